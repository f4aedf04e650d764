"""Decode one video stream frame by frame, keeping each frame's timestamp, and prove the file was whole.

Probing names every stream of the file and the part it plays in the output (:class:`StreamInfo.role`): the video
streams (all of them are anonymized), cover pictures (anonymized too), audio, subtitles, telemetry and other data,
timecode and chapter tracks (rebuilt by the muxer), attachments. Reading checks completeness as it goes: a file
whose packets end clearly before the duration its header states, or (MP4/MOV) whose index lists packets the file no
longer holds, is truncated, and nothing of it may be written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deidcli.errors import DecodeError, InvalidMediaError
from deidcli.video import isobmff

QUICKTIME = "mov,mp4,m4a,3gp,3g2,mj2"
# Containers whose header states the duration (not estimated from a bit rate), so a short file can be told apart.
STATED_DURATION = {QUICKTIME, "matroska,webm", "avi", "mxf", "nut", "asf", "flv"}
# Index counts that are samples rather than packets (uncompressed audio in MOV/AVI): never compared with packets.
PCM_PREFIX = "pcm_"
FONT_MIMETYPES = ("font/", "application/x-truetype-font", "application/vnd.ms-opentype", "application/x-font",
                  "application/font")


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the source and the part it plays in the output.

    ``role``: ``main`` (the video stream read first), ``video`` (another video stream: anonymized as well),
    ``cover`` (an attached picture: anonymized), ``audio``, ``subtitle``, ``data`` (telemetry ffmpeg can copy),
    ``opaque`` (a QuickTime data track of a format ffmpeg cannot write, e.g. DJI ``djmd``: carried as binary data),
    ``timecode`` and ``chapters`` (rebuilt by the muxer from the video's timecode tag and the chapter list),
    ``font`` (an attachment a subtitle renderer needs), ``attachment`` (any other attached file).
    """

    index: int
    type: str
    codec: str | None
    role: str
    fourcc: str = ""  # QuickTime sample format (from the file's own boxes), "" elsewhere
    track_id: int = 0  # QuickTime track id
    disposition: tuple[str, ...] = ()  # default, forced, attached_pic, ...
    metadata: dict = field(default_factory=dict, compare=False)
    packets: int = 0  # the container index's count; 0 when unknown
    stated_span: float | None = None  # how long the header says the stream lasts (s), where it says so per stream
    pix_fmt: str | None = None  # video streams
    width: int = 0
    height: int = 0

    @property
    def timecode(self) -> bool:
        return self.role == "timecode"


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    frame_rate: Fraction | None
    frames: int  # from the container index; 0 when unknown
    duration_s: float | None
    rotation: int  # display rotation in degrees, anticlockwise, as ffmpeg's -display_rotation
    container_format: str
    other_streams: tuple[StreamInfo, ...]  # everything but the stream this reader decodes
    color: dict[str, str]
    streams: tuple[StreamInfo, ...] = ()  # every stream of the file, in index order
    index: int = 0  # the decoded stream's index in the file
    metadata: dict = field(default_factory=dict, compare=False)  # the file's global tags
    start_s: float = 0.0  # the container's start time
    stated_s: float | None = None  # the container's duration, from its header (or estimated: see STATED_DURATION)

    @property
    def deep(self) -> bool:
        """More than 8 bits per sample (10-bit HDR, D-Log, ProRes): read and written as 16-bit RGB."""
        return bit_depth(self.pix_fmt) > 8

    @property
    def video_streams(self) -> tuple[StreamInfo, ...]:
        """The file's video streams other than cover pictures, the decoded one first."""
        return tuple(s for s in self.streams if s.role in ("main", "video"))


@dataclass
class StreamTally:
    """What the demuxer actually delivered of one stream: packets and where the last one ends."""

    packets: int = 0
    end: float | None = None  # seconds
    longest: float = 0.0  # the longest packet duration seen, seconds (or time between packets, where unstored)
    first: float | None = None  # start of the earliest packet, seconds
    last: float | None = None  # start of the latest packet, seconds
    step: float = 0.0  # the shortest time between two packets: a packet's duration where the file stores none


@dataclass
class ReadStats:
    decoded: int = 0  # frames of the decoded stream
    tallies: dict[int, StreamTally] = field(default_factory=dict)  # stream index -> what it delivered


def ffmpeg_path(path: Path | str) -> str:
    """A path ffmpeg reads as a file whatever its name: absolute, so ``12:30:00.mp4`` is no URL and ``-clip.mp4``
    no option."""
    return os.path.abspath(os.fspath(path))


def _open(path: Path):
    return av.open(ffmpeg_path(path), metadata_errors="ignore")


class VideoReader:
    """Streams frames from one video stream of a file (``video``: 0 for the first, not counting cover pictures);
    memory stays flat whatever the length. With ``deep``, a source of more than 8 bits per sample is read as
    16-bit RGB, so the pictures keep their precision to the encoder."""

    def __init__(self, path: str | Path, video: int = 0, deep: bool = False) -> None:
        self.path = Path(path)
        self._deep = deep
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise InvalidMediaError(f"{self.path}: cannot be read ({exc.strerror})") from None
        if size == 0:
            raise InvalidMediaError(f"{self.path}: file is empty")
        try:
            self._container = _open(self.path)
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidMediaError(f"{self.path}: not a readable video ({_why(exc)})") from None
        try:
            streams = [s for s in self._container.streams.video if not _is_cover_art(s)]
            if not streams:
                raise InvalidMediaError(f"{self.path}: has no video stream")
            if video >= len(streams):
                raise InvalidMediaError(f"{self.path}: has no video stream number {video + 1}")
            self._stream = streams[video]
            self._index = self._stream.index
            self.stats = ReadStats()
            self.info = self._describe()
        finally:
            # frames() decodes from a fresh demuxer, so the first-frame peek in _describe cannot skip a frame.
            self._container.close()

    def _describe(self) -> VideoInfo:
        s = self._stream
        cc = s.codec_context
        if cc is None:
            raise InvalidMediaError(f"{self.path}: video stream {s.index} is in a codec deid cannot decode (damaged "
                                    f"file?)")
        if not cc.width or not cc.height:
            raise InvalidMediaError(f"{self.path}: video stream has no picture size (damaged file?)")
        c = self._container
        tracks = {t.track_id: t for t in isobmff.read_tracks(self.path)} if c.format.name == QUICKTIME else {}
        chapters = isobmff.chapter_track_ids(list(tracks.values()))
        streams = tuple(_stream_info(o, self._index, tracks, chapters, c.format.name) for o in c.streams)
        rotation, color = self._first_frame_properties()
        duration = float(s.duration * s.time_base) if s.duration else None
        if duration is None and c.duration:
            duration = c.duration / av.time_base
        return VideoInfo(
            path=self.path,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.pix_fmt or "yuv420p",
            time_base=s.time_base,
            frame_rate=s.average_rate or s.guessed_rate,
            frames=int(s.frames or 0),
            duration_s=duration,
            rotation=rotation,
            container_format=c.format.name,
            other_streams=tuple(o for o in streams if o.index != self._index),
            color=color,
            streams=streams,
            index=self._index,
            metadata=dict(c.metadata),
            start_s=c.start_time / av.time_base if c.start_time else 0.0,
            stated_s=c.duration / av.time_base if c.duration else None,
        )

    def _first_frame_properties(self) -> tuple[int, dict[str, str]]:
        """Display rotation and colour tags, which PyAV exposes reliably only on decoded frames."""
        try:
            frame = next(iter(self._container.decode(self._stream)), None)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: cannot decode the first frame ({_why(exc)}): damaged or truncated "
                              f"file") from None
        if frame is None:
            raise DecodeError(f"{self.path}: no frame could be decoded (truncated or damaged file)")
        rotation = int(round(getattr(frame, "rotation", 0) or 0))
        color = {}
        # ffmpeg's numeric codes; 0 (and 2 for all but the range) mean unspecified, so leave them to the encoder.
        for key in ("color_range", "colorspace", "color_primaries", "color_trc"):
            value = int(getattr(frame, key, 0) or 0)
            if value and (key == "color_range" or value != 2):
                color[key] = str(value)
        return rotation, color

    def frames(self) -> Iterator[Frame]:
        """Every frame in presentation order; raises :class:`DecodeError` on damage or truncation.

        Every stream is demuxed (only this one decoded), so the end of each can be checked against the index and
        the stated duration once the file is read.
        """
        try:
            container = _open(self.path)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: cannot reopen ({_why(exc)})") from None
        stream = next(s for s in container.streams if s.index == self._index)
        stream.thread_type = "AUTO"
        wanted = [s for s in container.streams if s.type in ("video", "audio", "subtitle", "data")]
        stats = self.stats = ReadStats()
        index = 0
        deep = self._deep and self.info.deep
        # AVI stores no presentation times: libavformat guesses them a reorder delay late for H.264 (the first
        # frame at 1). The first frame is shown at the stream's start, so the guess is moved back by its lateness.
        shift = None if self.info.container_format == "avi" else 0
        try:
            for packet in container.demux(*wanted):
                _tally(stats, packet)
                if packet.stream.index != self._index:
                    continue
                for frame in packet.decode():
                    pts = frame.pts
                    if shift is None:
                        shift = max(0, (pts or 0) - (stream.start_time or 0)) if frame.dts is not None and pts is not None \
                            and pts > frame.dts else 0
                    yield Frame(index, None if pts is None else pts - shift, to_rgb(frame, deep))
                    index += 1
                    stats.decoded = index
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: decoding failed after frame {index} ({_why(exc)})") from None
        finally:
            container.close()
        if index == 0:
            raise DecodeError(f"{self.path}: no frame could be decoded")
        short = truncation(self.info, stats)
        if short:
            raise DecodeError(f"{self.path}: {short} (truncated file?)")

    @property
    def undecodable(self) -> int:
        """Packets of the decoded stream that gave no picture (no keyframe before them, or hidden by an edit
        list); known once :meth:`frames` has run."""
        tally = self.stats.tallies.get(self._index)
        return max(0, (tally.packets if tally else 0) - self.stats.decoded)


@dataclass
class Frame:
    index: int
    pts: int | None
    image: np.ndarray  # H x W x 3 RGB, as stored (not rotated): uint8, or uint16 from a deep reader


def colour_args(color: dict[str, str]) -> dict:
    """The matrix and range of a stream's YUV, for converting to and from RGB the same way both ways (swscale's
    defaults would read full-range or BT.709 pictures with the limited-range BT.601 matrix)."""
    out = {}
    if "colorspace" in color:
        out["colorspace"] = int(color["colorspace"])
    if "color_range" in color:
        out["color_range"] = int(color["color_range"])
    return out


def to_rgb(frame, deep: bool = False) -> np.ndarray:
    """A decoded frame as ``H x W x 3`` RGB, with the frame's own matrix and range: uint8, or uint16 (``deep``)."""
    kwargs = {}
    if frame.colorspace not in (0, 2):
        kwargs["src_colorspace"] = frame.colorspace
    if frame.color_range:
        kwargs["src_color_range"] = frame.color_range
    return frame.reformat(format="rgb48le" if deep else "rgb24", **kwargs).to_ndarray()


def bit_depth(pix_fmt: str) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, AttributeError):
        return 8


def _tally(stats: ReadStats, packet) -> None:
    if packet.size == 0 and packet.pts is None:
        return  # the demuxer's end-of-stream marker
    t = stats.tallies.setdefault(packet.stream.index, StreamTally())
    t.packets += 1
    if packet.pts is not None and packet.time_base:
        start = float(packet.pts * packet.time_base)
        if t.last is not None and start > t.last:
            t.step = start - t.last if not t.step else min(t.step, start - t.last)
        t.last = start
        t.first = start if t.first is None else min(t.first, start)
        duration = float((packet.duration or 0) * packet.time_base) or t.step
        t.end = start + duration if t.end is None else max(t.end, start + duration)
        t.longest = max(t.longest, duration)


def truncation(info: VideoInfo, stats: ReadStats) -> str | None:
    """Why the file read is shorter than it says it is, or None when it is whole.

    * MP4/MOV index every packet: a stream that delivered fewer (uncompressed audio aside, indexed in samples) lost
      its end.
    * Where the header states a stream's duration (MP4/MOV track durations, Matroska's per-track DURATION tags),
      its packets must span it, within half its longest packet; where it states only the file's duration, the
      streams together must reach that, within one and a half frames. A file that states nothing (MPEG-TS, raw
      streams) cannot be told from a shorter whole one.
    """
    for s in info.streams:
        if s.role in ("cover", "timecode", "chapters", "font", "attachment"):
            continue
        t = stats.tallies.get(s.index, StreamTally())
        if info.container_format == QUICKTIME and s.packets and s.type in ("video", "audio") \
                and not (s.codec or "").startswith(PCM_PREFIX):  # subtitles index empty samples it never delivers
            if t.packets < s.packets:
                return f"{s.type} stream {s.index} ends after {t.packets} of {s.packets} packets"
        if s.stated_span is not None and s.stated_span > 0 and s.type in ("video", "audio"):
            # Muxers count a stream's duration from zero, or from its first packet when that starts before zero
            # (audio priming): measured the same way, a whole stream reaches it.
            span = t.end - min(0.0, t.first) if t.end is not None and t.first is not None else 0.0
            if span < s.stated_span - max(0.005, 0.5 * t.longest) - _PTS_SLACK.get(info.container_format, 0):
                return f"{s.type} stream {s.index} lasts {span:.3f} s of the {s.stated_span:.3f} s its header states"
    if info.container_format not in STATED_DURATION:
        return None
    ends = [t for t in stats.tallies.values() if t.end is not None]
    if not ends or info.stated_s is None:
        return None
    container_end = info.start_s + info.stated_s
    reached = max(t.end for t in ends)
    frame = 1 / float(info.frame_rate) if info.frame_rate else 0.04
    slack = max(0.05, 1.5 * max(frame, max(t.longest for t in ends)))
    if reached < container_end - slack:
        return f"the streams end at {reached:.2f} s of the {container_end:.2f} s its header states"
    return None


# MP4 track durations count decode time, while packets end at their presentation times: B-frame reordering and
# edit lists move the last presentation by a few frames either way.
_PTS_SLACK = {QUICKTIME: 0.15}


def _stated_stream_span(s, container: str) -> float | None:
    if container == QUICKTIME and s.duration and s.time_base:
        return float(s.duration * s.time_base)
    tag = s.metadata.get("DURATION")  # Matroska: written by ffmpeg and mkvmerge for every track
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


def _stream_info(s, main: int, tracks: dict, chapters: set[int], container: str) -> StreamInfo:
    cc = s.codec_context
    codec = _codec_name(cc)
    track = tracks.get(s.id)
    fourcc = track.fourcc if track else ""
    disposition = _disposition(s)
    meta = dict(s.metadata)
    if s.index == main:
        role = "main"
    elif s.type == "video":
        role = "cover" if "attached_pic" in disposition else "video"
    elif s.type in ("audio", "subtitle"):
        role = s.type
    elif s.type == "attachment":
        mime = meta.get("mimetype", "").lower()
        role = "font" if mime.startswith(FONT_MIMETYPES) else "attachment"
    elif s.type == "data":
        if fourcc == "tmcd" or "timecode" in meta:
            role = "timecode"
        elif track is not None and track.track_id in chapters:
            role = "chapters"
        elif codec is None and fourcc:
            role = "opaque"
        else:
            role = "data"
    else:
        role = "other"
    width = height = 0
    pix_fmt = None
    if s.type == "video" and cc is not None:
        width, height, pix_fmt = cc.width, cc.height, cc.pix_fmt
    return StreamInfo(s.index, s.type, codec, role, fourcc, track.track_id if track else 0, disposition, meta,
                      int(s.frames or 0), _stated_stream_span(s, container), pix_fmt, width, height)


def _codec_name(cc) -> str | None:
    """The codec's own name (mp3, subrip), not its decoder's (mp3float, srt)."""
    if cc is None:
        return None
    try:
        return cc.codec.canonical_name
    except (AttributeError, av.error.FFmpegError):
        return cc.name


DISPOSITIONS = ("default", "dub", "original", "comment", "lyrics", "karaoke", "forced", "hearing_impaired",
                "visual_impaired", "clean_effects", "attached_pic", "captions", "descriptions", "metadata")


def _disposition(stream) -> tuple[str, ...]:
    try:
        flags = stream.disposition
        return tuple(n for n in DISPOSITIONS if flags & getattr(av.stream.Disposition, n))
    except AttributeError:
        return ()


def _is_cover_art(stream) -> bool:
    return "attached_pic" in _disposition(stream)


def _why(exc: Exception) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return msg.split(": '")[0].strip() or exc.__class__.__name__
