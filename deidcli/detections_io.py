"""Detections as data: one JSON line per frame, written by ``deid detect`` and read by ``deid run --detections``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from deidcli import __version__
from deidcli.detections import Detections
from deidcli.errors import InvalidMediaError

if TYPE_CHECKING:
    from deidcli.video.reader import VideoInfo

FORMAT = "deid-detections/1"


@dataclass(frozen=True)
class Reviewed:
    """A ``deid detect`` file with the corrections a reviewer made to it (``deid review``)."""

    detections: Path
    corrections: Path


def detections_path(output: Path) -> Path:
    """Where ``deid run --keep-detections`` puts the regions of ``output``, and ``deid review`` looks for them."""
    return Path(output).with_name(Path(output).name + ".detections.jsonl")


def header(source: Path, width: int, height: int, frames: int, fps: float | None) -> dict:
    return {"format": FORMAT, "tool": f"deid {__version__}", "source": source.name, "width": width,
            "height": height, "frames": frames, "fps": fps}


def frame_line(index: int, time_s: float | None, dets: Detections) -> str:
    return json.dumps({"frame": index, "time_s": None if time_s is None else round(time_s, 6),
                       "detections": dets.to_records()}) + "\n"


class RegionsWriter:
    """A ``deid detect`` file as it is written: the header of ``source`` (a video of ``info``), then one line per
    frame. ``deid detect`` and ``deid run --keep-detections`` both write through it."""

    def __init__(self, fh: TextIO, source: Path, info: VideoInfo) -> None:
        self._fh, self._time_base = fh, info.time_base
        fps = float(info.frame_rate) if info.frame_rate else None
        fh.write(json.dumps(header(source, info.width, info.height, info.frames, fps)) + "\n")

    def write(self, index: int, pts: int | None, dets: Detections) -> None:
        self._fh.write(frame_line(index, None if pts is None else float(pts * self._time_base), dets))


def read_detections(path: Path, width: int, height: int) -> Iterator[Detections]:
    """Per-frame detections in order; refuses a file made for another video size or with frames out of order."""
    try:
        fh = open(path)
    except OSError as exc:
        raise InvalidMediaError(f"{path}: cannot read detections ({exc.strerror})") from None
    with fh:
        try:
            head = json.loads(fh.readline() or "{}")
        except json.JSONDecodeError:
            head = {}
        if head.get("format") != FORMAT:
            raise InvalidMediaError(f"{path}: not a deid detections file (made by `deid detect`)")
        if (head.get("width"), head.get("height")) != (width, height):
            raise InvalidMediaError(
                f"{path}: detections are for a {head.get('width')}x{head.get('height')} video, not {width}x{height}"
            )
        for expected, line in enumerate(fh):
            rec = json.loads(line)
            if rec.get("frame") != expected:
                raise InvalidMediaError(f"{path}: frame {expected} missing from the detections")
            items = rec["detections"]
            yield Detections(
                [d["box"] for d in items],
                [d["score"] for d in items],
                [d["class_id"] for d in items],
                tracker_id=[d.get("track_id", -1) for d in items],
            )
