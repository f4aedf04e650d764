"""Decode the first video stream frame by frame, keeping each frame's timestamp."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deidcli.errors import DecodeError, InvalidMediaError


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
    other_streams: tuple["StreamInfo", ...]  # everything but the picture, copied unchanged
    color: dict[str, str]


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str  # "audio", "subtitle", "data", ...
    codec: str | None
    timecode: bool  # a QuickTime timecode track: muxers rebuild it from the video stream's timecode tag


@dataclass
class Frame:
    index: int
    pts: int | None
    image: np.ndarray  # H x W x 3 uint8 RGB, as stored (not rotated)


class VideoReader:
    """Streams frames from one file; memory stays flat whatever the length."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.stat().st_size == 0:
            raise InvalidMediaError(f"{self.path}: file is empty")
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise InvalidMediaError(f"{self.path}: not a readable video ({_why(exc)})") from None
        streams = [s for s in self._container.streams.video if not _is_cover_art(s)]
        if not streams:
            self._container.close()
            raise InvalidMediaError(f"{self.path}: has no video stream")
        self._stream = streams[0]
        self._index = self._stream.index
        try:
            self.info = self._describe()
        finally:
            # frames() decodes from a fresh demuxer, so the first-frame peek in _describe cannot skip a frame.
            self._container.close()

    def _describe(self) -> VideoInfo:
        s = self._stream
        cc = s.codec_context
        if not cc.width or not cc.height:
            raise InvalidMediaError(f"{self.path}: video stream has no picture size (damaged file?)")
        others = tuple(
            StreamInfo(
                o.index,
                o.type,
                o.codec_context.name if o.codec_context else None,
                o.type == "data" and "timecode" in o.metadata,
            )
            for o in self._container.streams
            if o.index != self._index
        )
        rotation, color = self._first_frame_properties()
        duration = float(s.duration * s.time_base) if s.duration else None
        if duration is None and self._container.duration:
            duration = self._container.duration / av.time_base
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
            container_format=self._container.format.name,
            other_streams=others,
            color=color,
        )

    def _first_frame_properties(self) -> tuple[int, dict[str, str]]:
        """Display rotation and colour tags, which PyAV exposes reliably only on decoded frames."""
        try:
            frame = next(iter(self._container.decode(self._stream)), None)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: cannot decode the first frame ({_why(exc)})") from None
        if frame is None:
            raise DecodeError(f"{self.path}: no frame could be decoded")
        rotation = int(round(getattr(frame, "rotation", 0) or 0))
        color = {}
        # ffmpeg's numeric codes; 0 (and 2 for all but the range) mean unspecified, so leave them to the encoder.
        for key in ("color_range", "colorspace", "color_primaries", "color_trc"):
            value = int(getattr(frame, key, 0) or 0)
            if value and (key == "color_range" or value != 2):
                color[key] = str(value)
        return rotation, color

    def frames(self) -> Iterator[Frame]:
        """Every frame in presentation order; raises :class:`DecodeError` on damage or truncation."""
        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: cannot reopen ({_why(exc)})") from None
        stream = next(s for s in container.streams if s.index == self._index)
        stream.thread_type = "AUTO"
        index = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield Frame(index, frame.pts, frame.to_ndarray(format="rgb24"))
                    index += 1
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.path}: decoding failed after frame {index} ({_why(exc)})") from None
        finally:
            container.close()
        expected = self.info.frames
        if index == 0:
            raise DecodeError(f"{self.path}: no frame could be decoded")
        if expected and index < expected:
            raise DecodeError(f"{self.path}: video ends after {index} of {expected} frames (truncated file?)")


def _is_cover_art(stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except AttributeError:
        return False


def _why(exc: Exception) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return msg.split(": '")[0].strip() or exc.__class__.__name__
