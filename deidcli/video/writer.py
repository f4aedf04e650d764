"""Encode anonymized frames and mux them with every other stream of the source, in one ffmpeg process.

Frames go to ffmpeg as raw video inside NUT over a pipe, so each frame keeps its own timestamp (variable frame rate
stays variable) and the encoder runs in parallel with detection. What happens to every other stream is decided
beforehand (:mod:`deidcli.video.containers`): ffmpeg copies or converts them from the source file, selected by
index, and takes the already anonymized extra video streams, cover pictures and telemetry from files prepared
beside the output. When ffmpeg fails, the cause is read from its whole log, not its last line.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from deidcli.errors import EncodeError, OutputNotWritableError
from deidcli.video import isobmff
from deidcli.video.containers import ENCODER_CODECS, OutputPlan, OutStream
from deidcli.video.planes import Rect, paste_regions, pastes
from deidcli.video.probe import ffmpeg_path
from deidcli.video.reader import VideoInfo

# What x264/x265 take as they are; others are mapped to the nearest by chroma subsampling and bit depth.
_X26X_PIX_FMTS = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray",
    "yuv420p10le", "yuv422p10le", "yuv444p10le", "gray10le",
}
QUICKTIME_MUXERS = {"mp4", "mov", "3gp"}
_VP9_PIX_FMTS = {"yuv420p", "yuv422p", "yuv440p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"}


def ffmpeg_exe() -> str:
    """The static ffmpeg (with libx264) that ships in the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "auto"  # the container's own: libx264, or libvpx-vp9 for WebM
    crf: int = 18  # visually lossless for H.264
    preset: str = "veryfast"  # 2x the fps of "medium" on 2 cores for ~10% more bytes; see docs/reliability.md
    strip_metadata: bool = False
    exact_size: bool = False  # odd sides as they are, in 4:4:4 (few players), not padded to even in 4:2:0


def encoder_pix_fmt(encoder: str, source: str, width: int, height: int, exact_size: bool = False
                    ) -> tuple[str, str]:
    """The pixel format to encode a ``source`` picture in, and a note when it is not the source's own.

    Chroma subsampling and bit depth are kept where the encoder allows (10 bits at most); RGB becomes 4:4:4;
    alpha is dropped. 4:2:0 and 4:2:2 need even sides in H.264/HEVC: odd sizes are padded to even
    (:func:`padded_size`), or with ``exact_size`` written 4:4:4, which browsers and QuickTime do not play.
    """
    try:
        desc = av.VideoFormat(source, 16, 16)  # at a size, so the components show their subsampling
    except ValueError:
        return "yuv420p", f"pixel format {source} unknown to the encoder: written as yuv420p"
    comps = desc.components
    bits = max(c.bits for c in comps) if comps else 8
    deep = bits > 8
    grey = len(comps) in (1, 2) and not desc.is_rgb
    alpha = len(comps) in (2, 4)
    if grey:
        sub = "444" if encoder in ("libx264", "libx265") else "420"  # no chroma to subsample: any will do
    elif desc.is_rgb or len(comps) < 3:
        sub = "444"
    else:
        cw, ch = comps[1].width, comps[1].height
        full_w, full_h = comps[0].width, comps[0].height
        sub = "420" if (cw < full_w and ch < full_h) else "422" if cw < full_w else "444"
    if encoder.startswith("libvpx"):
        allowed, odd_ok = _VP9_PIX_FMTS, True
    elif encoder in ("libx264", "libx265"):
        allowed, odd_ok = _X26X_PIX_FMTS, not exact_size
    else:
        return ("yuv420p10le" if deep else "yuv420p"), ""
    if source in allowed and (odd_ok or (sub == "444" or (width % 2 == 0 and (sub == "422" or height % 2 == 0)))):
        return source, ""
    notes = []
    if not odd_ok and sub != "444" and (width % 2 or (sub == "420" and height % 2)):
        sub = "444"
        notes.append(f"{width}x{height} has an odd side: written 4:4:4 (subsampled chroma needs even sides)")
    if grey and encoder in ("libx264", "libx265"):
        fmt = "gray10le" if deep else "gray"
    else:
        fmt = f"yuv{sub}p" + ("10le" if deep else "")
    if fmt not in allowed:
        fmt = "yuv420p10le" if deep else "yuv420p"
    if bits > 10:
        notes.append(f"{bits}-bit {source} written with 10 bits")
    if alpha:
        notes.append(f"{source} has an alpha channel: dropped")
    if not notes:
        notes.append(f"pixel format {source} written as {fmt}")
    return fmt, "; ".join(notes)


def padded_size(encoder: str, pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """The picture size ``encoder`` is given in ``pix_fmt``: H.264 and HEVC code whole chroma samples only, so a
    subsampled side that is odd grows by a pixel (and their own cropping counts in chroma samples too)."""
    comps = av.VideoFormat(pix_fmt, 16, 16).components
    if ENCODER_CODECS.get(encoder) not in ("h264", "hevc") or len(comps) < 3:
        return width, height
    luma, chroma = comps[0], comps[1]
    return (width + width % 2 if chroma.width < luma.width else width,
            height + height % 2 if chroma.height < luma.height else height)


def pad_edges(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` grown to ``width`` x ``height`` by repeating its last column and row: pixels of the anonymized
    picture only, which players cut off again (a clean aperture) or show as a one-pixel seam."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    return np.pad(image, ((0, height - h), (0, width - w), (0, 0)), mode="edge")


def padding_note(info: VideoInfo, size: tuple[int, int], aperture: bool) -> str:
    width, height = size
    shown = (f"with a clean aperture of {info.width}x{info.height} (ffmpeg shows {info.width // 2 * 2}x"
             f"{info.height // 2 * 2}, players that ignore it the whole picture)") if aperture else \
        "(the container records no crop)"
    return (f"{info.width}x{info.height} has an odd side: written {width}x{height}, the edge repeated, {shown}; "
            f"--exact-size keeps the size in 4:4:4 chroma, which browsers and QuickTime do not play")


@dataclass
class Extras:
    """Inputs prepared beside the output: anonymized extra video streams and cover pictures (source index ->
    file), and the telemetry tracks ffmpeg cannot copy (one file, in the order of the plan's grafts)."""

    pictures: dict[int, Path] = field(default_factory=dict)
    grafts: Path | None = None


def _quality(encoder: str, settings: EncodeSettings, n: int) -> list[str]:
    if encoder in ("libx264", "libx265"):
        return [f"-preset:{n}", settings.preset, f"-crf:{n}", str(settings.crf)]
    if encoder.endswith("_nvenc"):
        return [f"-preset:{n}", "p4", f"-rc:{n}", "vbr", f"-cq:{n}", str(settings.crf)]
    if encoder.startswith("libvpx"):
        # realtime speed 7: about x264 veryfast's frames/s on 2 cores, and its PSNR at crf + 4 (measured at 1080p)
        return [f"-crf:{n}", str(settings.crf + 4), f"-b:{n}", "0", f"-deadline:{n}", "realtime",
                f"-cpu-used:{n}", "7", f"-row-mt:{n}", "1"]
    if encoder == "libsvtav1":
        return [f"-crf:{n}", str(settings.crf + 10), f"-preset:{n}", "10"]
    if encoder in ("mpeg2video", "mpeg4", "mjpeg"):
        return [f"-q:{n}", "2"]
    return []


def encoder_command(info: VideoInfo, plan: OutputPlan, settings: EncodeSettings, output: Path,
                    extras: Extras | None = None, pix_fmt: str | None = None) -> list[str]:
    """The ffmpeg command line that reads NUT frames on stdin and the source file for everything else."""
    extras = extras or Extras()
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    # Input 0: our frames. They are stored unrotated, so re-attach the source's display rotation.
    cmd += ["-noautorotate"]
    if info.rotation:
        cmd += ["-display_rotation", str(info.rotation)]
    cmd += ["-f", "nut", "-i", "pipe:0"]
    # Input 1: the source, for audio, subtitles, data, chapters and metadata.
    cmd += ["-i", ffmpeg_path(info.path)]
    inputs: dict[int, int] = {}
    for index, path in extras.pictures.items():
        inputs[index] = 2 + len(inputs)
        cmd += ["-i", ffmpeg_path(path)]
    graft_input = None
    if extras.grafts is not None:
        graft_input = 2 + len(inputs)
        cmd += ["-i", ffmpeg_path(extras.grafts)]
    keep = not settings.strip_metadata
    grafted = 0
    out_streams = [o for o in plan.streams if o.action in ("encode", "copy", "convert", "graft")]
    for n, o in enumerate(out_streams):
        s = o.source
        if o.action == "encode" and s.index == info.index:
            cmd += ["-map", "0:v:0", f"-c:{n}", o.codec, f"-pix_fmt:{n}", pix_fmt or "yuv420p"]
            cmd += _quality(o.codec, settings, n)
            if not plan.muxer.bframes or plan.muxer.name == "nut":
                # nut: an extra stream is copied into the output later, where reordered frames' negative decode
                # times would be shifted (Matroska) or cut by an edit list
                cmd += [f"-bf:{n}", "0"]
            if info.color:
                # Encoders take colour tags from the frames (ffmpeg 7+), and raw frames carry none.
                params = {"color_range": "range", "color_primaries": "color_primaries", "color_trc": "color_trc",
                          "colorspace": "colorspace"}
                cmd += [f"-filter:{n}", "setparams=" + ":".join(f"{params[k]}={v}" for k, v in info.color.items())]
        elif o.action == "encode":
            cmd += ["-map", f"{inputs[s.index]}:v:0", f"-c:{n}", "copy"]
        elif o.action == "graft":
            cmd += ["-map", f"{graft_input}:{grafted}", f"-c:{n}", "copy"]
            grafted += 1
        else:
            cmd += ["-map", f"1:{s.index}", f"-c:{n}", o.codec]
        flags = "+".join(s.disposition) if s.disposition else "0"
        cmd += [f"-disposition:{n}", flags]
        if keep:
            cmd += [f"-map_metadata:s:{n}", f"1:s:{s.index}"]
    # Keep every frame with its own timestamp: no duplication, no dropping, no rounding to a nominal rate. AVI counts
    # frames at a fixed rate: its clock is the source's frame time base, or the muxer would pick a finer one.
    time_base = str(info.time_base) if plan.muxer.name == "avi" else "demux"
    cmd += ["-fps_mode:v", "passthrough", "-enc_time_base:v", time_base, "-copyts"]
    if plan.muxer.ts_delay:
        cmd += ["-muxdelay", "0", "-muxpreload", "0"]  # or copied timestamps move by the mux delay
    if keep:
        cmd += ["-map_metadata", "1", "-map_chapters", "1"]
    else:
        cmd += ["-map_metadata", "-1", "-map_metadata:s", "-1", "-map_chapters", "-1", "-fflags", "+bitexact",
                "-flags:v", "+bitexact"]
    if plan.muxer.name in ("mp4", "mov", "3gp"):
        tb = info.time_base
        if tb.numerator == 1:
            cmd += ["-video_track_timescale", str(tb.denominator)]
        flags = "+faststart"
        if keep and any("." in k for k in info.metadata):  # QuickTime mdta keys (com.apple.quicktime.location...)
            flags += "+use_metadata_tags"
        cmd += ["-movflags", flags]
    cmd += ["-f", plan.muxer.name, ffmpeg_path(output)]
    return cmd


# ffmpeg's own words for "it failed", which never say why.
_GENERIC = ("Conversion failed", "Nothing was written into output file", "Error opening output file",
            "Error opening output files", "Terminating thread", "Task finished with error code",
            "Error sending frames to consumers", "Could not write header", "Error while filtering",
            "Error submitting a packet to the muxer", "Error muxing a packet", "Error writing trailer",
            "Error closing file", "Exiting with exit code")


def failure_cause(log: str) -> str:
    """The line of an ffmpeg log that says why it failed (the first that is not a generic "it failed")."""
    lines = []
    for raw in log.splitlines():
        line = raw.strip()
        while line.startswith("[") and "] " in line:  # [vost#0:0/libx264 @ 0x..] [enc:libx264 @ 0x..] why
            line = line.split("] ", 1)[1].strip()
        if line:
            lines.append(line)
    specific = [ln for ln in lines if not any(g in ln for g in _GENERIC)]
    return (specific or lines or ["no message"])[0]


class VideoWriter:
    """Feeds frames to the ffmpeg encoder; :meth:`close` waits for it and raises :class:`EncodeError` on failure."""

    def __init__(self, info: VideoInfo, settings: EncodeSettings, output: Path, plan: OutputPlan | None = None,
                 extras: Extras | None = None) -> None:
        from deidcli.video.containers import plan_output

        self.info = info
        self.output = output
        self.plan = plan or plan_output(info, output, settings.codec, settings.strip_metadata)
        main = next(o for o in self.plan.streams if o.source.index == info.index)
        self.pix_fmt, self.pix_fmt_note = encoder_pix_fmt(main.codec, info.pix_fmt, info.width, info.height,
                                                          settings.exact_size)
        self.size = padded_size(main.codec, self.pix_fmt, info.width, info.height)
        # QuickTime files record the true size as a clean aperture; other containers have no crop ffmpeg writes
        self._aperture = self.size != (info.width, info.height) and self.plan.muxer.name in QUICKTIME_MUXERS
        if self.size != (info.width, info.height):
            self.pix_fmt_note = "; ".join(filter(None, [self.pix_fmt_note,
                                                        padding_note(info, self.size, self._aperture)]))
        self._log = tempfile.TemporaryFile()
        self.command = encoder_command(info, self.plan, settings, output, extras, self.pix_fmt)
        # A session of its own: Ctrl-C reaches deid, which then stops the encoder and removes the partial file.
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stderr=self._log, start_new_session=True
        )
        self._nut = av.open(self._proc.stdin, mode="w", format="nut")
        rate = info.frame_rate or 25
        self._stream = self._nut.add_stream("rawvideo", rate=rate)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = self.pix_fmt
        self._stream.time_base = info.time_base
        # The codec's time base defaults to 1/rate, which would round variable timestamps onto a fixed grid.
        self._stream.codec_context.time_base = info.time_base
        self._last_pts: int | None = None
        self.frames_written = 0
        # Back to YUV with the matrix and range the frames were read with and the output is tagged with.
        self._to_yuv = {dst: int(info.color[key]) for key, dst in (("colorspace", "dst_colorspace"),
                                                                   ("color_range", "dst_color_range"))
                        if key in info.color}

    def stored(self, image: np.ndarray) -> np.ndarray:
        """``image`` (``H x W x 3`` uint8 RGB) as a reader gets it back from this output's pixel format before any
        compression: the 4:2:0 chroma and 8-bit matrix round trip that a lossless encode (crf 0) keeps exactly."""
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=self.pix_fmt, **self._to_yuv)
        back = {k.replace("dst_", "src_"): v for k, v in self._to_yuv.items()}
        return frame.reformat(format="rgb24", **back).to_ndarray()

    def write(self, image: np.ndarray, pts: int | None, planes: np.ndarray | None = None,
              changed: Sequence[Rect] | None = None) -> None:
        """Queue one ``H x W x 3`` RGB frame (uint8, or uint16 for deep sources) with its source timestamp.

        Given the frame's decoded ``planes`` and every rectangle of ``image`` the anonymizer ``changed``, only those
        rectangles are converted and pasted into the planes (:mod:`deidcli.video.planes`), where the output keeps
        the source's 4:2:0 format; otherwise the whole of ``image`` is converted."""
        if pts is None:  # streams without timestamps: keep order at the nominal rate
            pts = 0 if self._last_pts is None else self._last_pts + 1
        if changed is not None and pastes(planes, image, self.pix_fmt) and self.pix_fmt == self.info.pix_fmt:
            frame = av.VideoFrame.from_ndarray(paste_regions(planes, image, changed, self.pix_fmt, self._to_yuv),
                                               format=self.pix_fmt)
        else:
            rgb = "rgb48le" if image.dtype == np.uint16 else "rgb24"
            frame = av.VideoFrame.from_ndarray(pad_edges(image, *self.size), format=rgb).reformat(format=self.pix_fmt, **self._to_yuv)
        frame.pts = pts
        frame.time_base = self.info.time_base
        self._last_pts = pts
        try:
            for packet in self._stream.encode(frame):
                self._nut.mux(packet)
        except (BrokenPipeError, OSError, av.error.FFmpegError):
            raise self._failure("encoder stopped") from None
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
            raise self._failure(f"encoder failed (ffmpeg exit {rc})")
        self._finish()

    def _finish(self) -> None:
        """Give grafted telemetry tracks their names back, and check that every frame reached the file."""
        renames = _graft_renames(self.output, self.plan.kept("encode", "copy", "convert", "graft"))
        if renames:
            isobmff.rename_sample_formats(self.output, renames)
        if self.plan.muxer.name in QUICKTIME_MUXERS:
            isobmff.disable_tracks(self.output, _subtitles_not_default(self.output, self.plan))
        if self._aperture:
            try:
                isobmff.set_clean_aperture(self.output, self.info.width, self.info.height, self._video_track())
            except (ValueError, OSError) as exc:
                raise EncodeError(f"cannot record the picture's size in the output: {exc}") from None
        written = _video_packets(self.output)
        if written != self.frames_written:
            raise EncodeError(f"the encoder wrote {written} of {self.frames_written} frames")

    def _video_track(self) -> int:
        """The encoded stream's place among the output's video tracks (cover pictures are none in MP4/MOV)."""
        videos = [o for o in self.plan.kept("encode", "copy", "convert", "graft")
                  if o.source.role in ("main", "video")]
        return next(k for k, o in enumerate(videos) if o.source.index == self.info.index)

    def kill_encoder(self) -> None:
        """Kill ffmpeg now; a write in progress then fails with a broken pipe. Call :meth:`abort` after."""
        if self._proc.poll() is None:
            self._proc.kill()

    def abort(self) -> None:
        """Stop the encoder without finishing the file (the caller deletes it)."""
        self.kill_encoder()
        self._proc.wait()
        try:
            self._nut.close()
        except Exception:  # noqa: BLE001 - the pipe is already gone; nothing to save
            pass

    def _failure(self, what: str) -> Exception:
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._log.seek(0)
        log = self._log.read().decode(errors="replace")
        cause = failure_cause(log)
        if "No space left on device" in log:
            return OutputNotWritableError(f"{self.output.parent}: no space left on device")
        return EncodeError(f"{what}: {cause}")


def _graft_renames(path: Path, out_streams: list[OutStream]) -> dict[int, str]:
    """Track id -> fourcc for the grafted tracks of the output.

    ffmpeg writes every binary data track as ``gpmd``, in stream order; the k-th such track of the file is the k-th
    data stream of the plan.
    """
    data = [o for o in out_streams if o.source.type == "data"]
    if not any(o.action == "graft" for o in data):
        return {}
    written = [t for t in isobmff.read_tracks(path) if t.fourcc == "gpmd"]
    if len(written) != len(data):
        raise EncodeError(f"the output holds {len(written)} of its {len(data)} telemetry tracks")
    return {t.track_id: o.source.fourcc for t, o in zip(written, data) if o.action == "graft"}


def _subtitles_not_default(path: Path, plan: OutputPlan) -> set[int]:
    """Track ids of the output's subtitle tracks whose source stream was not marked default.

    The MP4/MOV muxer enables the first track of each kind when none is default; for subtitles that means shown
    unasked (audio and video keep it: a disabled one is not played at all). The k-th subtitle track of the file is
    the k-th subtitle stream of the plan; chapter lists are text tracks too, and are skipped.
    """
    tracks = isobmff.read_tracks(path)
    chapters = isobmff.chapter_track_ids(tracks)
    written = [t for t in tracks if t.handler in ("sbtl", "text", "subt", "subp") and t.track_id not in chapters]
    kept = [o for o in plan.kept("copy", "convert") if o.source.type == "subtitle"]
    if len(written) != len(kept):
        return set()
    return {t.track_id for t, o in zip(written, kept) if "default" not in o.source.disposition}


def _video_packets(path: Path) -> int:
    with av.open(ffmpeg_path(path), metadata_errors="ignore") as c:
        streams = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            return 0
        return sum(1 for p in c.demux(streams[0]) if p.size)
