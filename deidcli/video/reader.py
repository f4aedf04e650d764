"""Decode one video stream frame by frame, keeping each frame's timestamp, and prove the file was whole.

Probing (:mod:`deidcli.video.probe`) names every stream of the file and its role in the output; reading demuxes
them all and checks, once the file is read, that it was whole (:mod:`deidcli.video.completeness`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deidcli.errors import DecodeError, InvalidMediaError
from deidcli.video import isobmff
from deidcli.video.completeness import ReadStats, tally, truncation
from deidcli.video.planes import PASTE_FORMATS
from deidcli.video.probe import QUICKTIME, StreamInfo, is_cover_art, open_media, stream_info, why


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
        """The file's video streams other than cover pictures, in file order (as ``VideoReader(video=k)`` counts)."""
        return tuple(s for s in self.streams if s.role in ("main", "video"))


class VideoReader:
    """Streams frames from one video stream of a file (``video``: 0 for the first, not counting cover pictures);
    memory stays flat whatever the length. With ``deep``, a source of more than 8 bits per sample is read as
    16-bit RGB, so the pictures keep their precision to the encoder. With ``planes``, 4:2:0 frames also keep their
    decoded planes (:attr:`Frame.planes`), for the writer to paste the anonymized regions into."""

    def __init__(self, path: str | Path, video: int = 0, deep: bool = False, planes: bool = False) -> None:
        self.path = Path(path)
        self._deep = deep
        self._planes = planes
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise InvalidMediaError(f"{self.path}: cannot be read ({exc.strerror})") from None
        if size == 0:
            raise InvalidMediaError(f"{self.path}: file is empty")
        try:
            self._container = open_media(self.path)
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidMediaError(f"{self.path}: not a readable video ({why(exc)})") from None
        try:
            streams = [s for s in self._container.streams.video if not is_cover_art(s)]
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
        self._crop = self._padding(cc.width, cc.height) if tracks else None
        width, height = self._crop or (cc.width, cc.height)
        chapters = isobmff.chapter_track_ids(list(tracks.values()))
        streams = tuple(stream_info(o, self._index, tracks, chapters, c.format.name) for o in c.streams)
        rotation, color = self._first_frame_properties()
        duration = float(s.duration * s.time_base) if s.duration else None
        if duration is None and c.duration:
            duration = c.duration / av.time_base
        return VideoInfo(
            path=self.path,
            width=width,
            height=height,
            pix_fmt=cc.pix_fmt or "yuv420p",
            time_base=s.time_base,
            frame_rate=s.average_rate or s.guessed_rate,
            frames=int(s.frames or 0),
            duration_s=duration,
            rotation=rotation,
            container_format=c.format.name,
            color=color,
            streams=streams,
            index=self._index,
            metadata=dict(c.metadata),
            start_s=c.start_time / av.time_base if c.start_time else 0.0,
            stated_s=c.duration / av.time_base if c.duration else None,
        )

    def _padding(self, coded_w: int, coded_h: int) -> tuple[int, int] | None:
        """The size a clean aperture at the top left gives the picture (padding to even sides, as deid writes odd
        sizes); None without one. Centred apertures (a broadcast "clean" area) are left to the viewer."""
        aperture = isobmff.clean_apertures(self.path).get(self._stream.id)
        if aperture is None:
            return None
        left, top, width, height = aperture
        if left or top or not (0 < width <= coded_w and 0 < height <= coded_h) or (width, height) == (coded_w,
                                                                                                       coded_h):
            return None
        return width, height

    def _first_frame_properties(self) -> tuple[int, dict[str, str]]:
        """Display rotation and colour tags, which PyAV exposes reliably only on decoded frames."""
        try:
            frame = next(iter(self._container.decode(self._stream)), None)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: cannot decode the first frame ({why(exc)}): damaged or truncated "
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
            container = open_media(self.path)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: cannot reopen ({why(exc)})") from None
        stream = next(s for s in container.streams if s.index == self._index)
        stream.thread_type = "AUTO"
        wanted = [s for s in container.streams if s.type in ("video", "audio", "subtitle", "data")]
        stats = self.stats = ReadStats()
        index = 0
        deep = self._deep and self.info.deep
        # 10-bit planes only beside 16-bit RGB: an 8-bit picture cannot be pasted into them
        keep = self._planes and self.info.pix_fmt in PASTE_FORMATS and (deep or not self.info.deep) \
            and self.info.width % 2 == 0 and self.info.height % 2 == 0 and self._crop is None
        # AVI stores no presentation times: libavformat guesses them a reorder delay late for H.264 (the first
        # frame at 1). The first frame is shown at the stream's start, so the guess is moved back by its lateness.
        shift = None if self.info.container_format == "avi" else 0
        try:
            for packet in container.demux(*wanted):
                tally(stats, packet)
                if packet.stream.index != self._index:
                    continue
                for frame in packet.decode():
                    pts = frame.pts
                    if shift is None:
                        shift = max(0, (pts or 0) - (stream.start_time or 0)) if frame.dts is not None and pts is not None \
                            and pts > frame.dts else 0
                    planes = frame.to_ndarray() if keep and frame.format.name == self.info.pix_fmt else None
                    image = to_rgb(frame, deep)
                    if self._crop:
                        image = image[:self.info.height, :self.info.width]
                    yield Frame(index, None if pts is None else pts - shift, image, planes)
                    index += 1
                    stats.decoded = index
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: decoding failed after frame {index} ({why(exc)})") from None
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
    planes: np.ndarray | None = None  # the decoded 4:2:0 picture (VideoReader(planes=True)), PyAV's packed layout


def to_rgb(frame, deep: bool = False) -> np.ndarray:
    """A decoded frame as ``H x W x 3`` RGB, with the frame's own matrix and range (swscale's default would read
    full-range or BT.709 pictures with the limited-range BT.601 matrix): uint8, or uint16 (``deep``)."""
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


