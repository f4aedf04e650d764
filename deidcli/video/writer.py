"""Encode anonymized frames and mux them with every other stream of the source, in one ffmpeg process.

Frames go to ffmpeg as raw video inside NUT over a pipe, so each frame keeps its own timestamp (variable frame rate
stays variable) and the encoder runs in parallel with detection. ffmpeg takes audio, subtitle and data streams,
chapters and metadata straight from the source file, selected by type, never by index.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from deidcli.errors import EncodeError
from deidcli.video.reader import VideoInfo

# Pixel formats libx264/libx265 take as they are; anything else is encoded as yuv420p.
_KEEP_PIX_FMTS = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray",
    "yuv420p10le", "yuv422p10le", "yuv444p10le", "gray10le",
}


def ffmpeg_exe() -> str:
    """The static ffmpeg (with libx264) that ships in the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "libx264"
    crf: int = 18  # visually lossless for H.264
    preset: str = "veryfast"  # 2x the fps of "medium" on 2 cores for ~10% more bytes; see README
    strip_metadata: bool = False

    def output_pix_fmt(self, source_pix_fmt: str) -> str:
        return source_pix_fmt if source_pix_fmt in _KEEP_PIX_FMTS else "yuv420p"


def encoder_command(info: VideoInfo, settings: EncodeSettings, output: Path) -> list[str]:
    """The ffmpeg command line that reads NUT frames on stdin and the source file for everything else."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    # Input 0: our frames. They are stored unrotated, so re-attach the source's display rotation.
    cmd += ["-noautorotate"]
    if info.rotation:
        cmd += ["-display_rotation", str(info.rotation)]
    cmd += ["-f", "nut", "-i", "pipe:0"]
    # Input 1: the source, for audio, subtitles, data, chapters and metadata.
    cmd += ["-i", str(info.path)]
    cmd += ["-map", "0:v:0", "-map", "1:a?", "-map", "1:s?"]
    # Data streams (telemetry, GPS among them) go only when metadata is kept. Timecode tracks are left to the
    # muxer, which rebuilds them from the video stream's timecode tag (copying one into MP4 fails).
    data_streams = [
        o for o in info.other_streams if o.type == "data" and not o.timecode and not settings.strip_metadata
    ]
    for o in data_streams:
        cmd += ["-map", f"1:{o.index}"]
    cmd += ["-c:v", settings.codec, "-pix_fmt", settings.output_pix_fmt(info.pix_fmt)]
    if settings.codec in ("libx264", "libx265"):
        cmd += ["-preset", settings.preset, "-crf", str(settings.crf)]
    elif settings.codec.endswith("_nvenc"):
        cmd += ["-preset", "p4", "-rc", "vbr", "-cq", str(settings.crf)]
    else:
        cmd += ["-crf", str(settings.crf)]
    for key, value in info.color.items():
        cmd += [f"-{key}", value]
    cmd += ["-c:a", "copy", "-c:s", "copy", "-c:d", "copy"]
    # Keep every frame with its own timestamp: no duplication, no dropping, no rounding to a nominal rate.
    cmd += ["-fps_mode:v", "passthrough", "-enc_time_base:v", "demux", "-copyts"]
    if settings.strip_metadata:
        cmd += ["-map_metadata", "-1", "-map_metadata:s", "-1", "-map_chapters", "-1", "-fflags", "+bitexact",
                "-flags:v", "+bitexact"]
    else:
        cmd += ["-map_metadata", "1", "-map_metadata:s:v:0", "1:s:v:0", "-map_chapters", "1"]
        # An explicit -map_metadata turns off ffmpeg's per-stream copy, so name each copied stream.
        for kind in ("audio", "subtitle"):
            for k, _ in enumerate(o for o in info.other_streams if o.type == kind):
                cmd += [f"-map_metadata:s:{kind[0]}:{k}", f"1:s:{kind[0]}:{k}"]
        for k, o in enumerate(data_streams):
            cmd += [f"-map_metadata:s:d:{k}", f"1:{o.index}"]
    fmt = output.suffix.lower()
    if fmt in (".mp4", ".mov", ".m4v"):
        tb = info.time_base
        if tb.numerator == 1:
            cmd += ["-video_track_timescale", str(tb.denominator)]
        cmd += ["-movflags", "+faststart"]
    cmd += [str(output)]
    return cmd


class VideoWriter:
    """Feeds frames to the ffmpeg encoder; :meth:`close` waits for it and raises :class:`EncodeError` on failure."""

    def __init__(self, info: VideoInfo, settings: EncodeSettings, output: Path) -> None:
        self.info = info
        self.output = output
        self.pix_fmt = settings.output_pix_fmt(info.pix_fmt)
        self._log = tempfile.TemporaryFile()
        self.command = encoder_command(info, settings, output)
        # A session of its own: Ctrl-C reaches deid, which then stops the encoder and removes the partial file.
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stderr=self._log, start_new_session=True
        )
        self._nut = av.open(self._proc.stdin, mode="w", format="nut")
        rate = info.frame_rate or 25
        self._stream = self._nut.add_stream("rawvideo", rate=rate)
        self._stream.width = info.width
        self._stream.height = info.height
        self._stream.pix_fmt = self.pix_fmt
        self._stream.time_base = info.time_base
        # The codec's time base defaults to 1/rate, which would round variable timestamps onto a fixed grid.
        self._stream.codec_context.time_base = info.time_base
        self._last_pts: int | None = None
        self.frames_written = 0

    def write(self, image: np.ndarray, pts: int | None) -> None:
        """Queue one ``H x W x 3`` uint8 RGB frame with its source timestamp."""
        if pts is None:  # streams without timestamps: keep order at the nominal rate
            pts = 0 if self._last_pts is None else self._last_pts + 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=self.pix_fmt)
        frame.pts = pts
        frame.time_base = self.info.time_base
        self._last_pts = pts
        try:
            for packet in self._stream.encode(frame):
                self._nut.mux(packet)
        except (BrokenPipeError, OSError, av.error.FFmpegError):
            raise EncodeError(f"encoder stopped: {self._stderr_tail()}") from None
        self.frames_written += 1

    def close(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._nut.mux(packet)
            self._nut.close()
            self._proc.stdin.close()
        except (BrokenPipeError, OSError, av.error.FFmpegError):
            pass
        rc = self._proc.wait()
        if rc != 0:
            raise EncodeError(f"encoder failed (ffmpeg exit {rc}): {self._stderr_tail()}")

    def abort(self) -> None:
        """Stop the encoder without finishing the file (the caller deletes it)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        try:
            self._nut.close()
        except Exception:  # noqa: BLE001 - the pipe is already gone; nothing to save
            pass

    def _stderr_tail(self) -> str:
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else "no message"
