"""Positions in telemetry text: the ``.SRT`` a DJI drone writes beside each clip, or the subtitle track some
cameras embed, with the aircraft's position every frame.

A batch carries each sidecar into the output tree beside its clip. Under ``--strip-metadata`` the positions go:
every field that names a place (latitude, longitude, altitude, GPS(...) and HOME(...), which is where the pilot
stood) is removed and the rest (exposure, time, distances) kept. A file in which something that still reads like
coordinates remains is left out whole, never written half cleaned; a subtitle track that carries positions is left
out of the video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SIDECAR_EXTS = {".srt"}

# [latitude: 22.54] [longtitude : 113.95] (DJI's own spelling) [rel_alt: 1.2 abs_alt: 52.3] [gps: ...]
_FIELD = re.compile(r"\[\s*(?:lat|lon|long|longtitude|longitude|latitude|alt|altitude|rel_alt|abs_alt|gps|home|"
                    r"position|coord\w*)\b[^\]]*\]", re.IGNORECASE)
# GPS(113.95,22.54,16)  HOME(149.02,-20.25)  GPS (113.95, 22.54, 18)
_CALL = re.compile(r"\b(?:GPS|HOME|POS|LOC)\s*\([^)]*\)", re.IGNORECASE)
# latitude: 22.54 / Lat=22.54 / lon 113.95 outside brackets
_PAIR = re.compile(r"\b(?:lat(?:itude)?|lon(?:g(?:t?itude)?)?|alt(?:itude)?)\s*[:=]?\s*-?\d+(?:\.\d+)?",
                   re.IGNORECASE)
# What coordinates look like: a number with four or more decimals
_COORDINATE = re.compile(r"-?\d{1,3}\.\d{4,}")


@dataclass(frozen=True)
class Stripped:
    text: str
    removed: int  # fields removed
    safe: bool  # nothing coordinate-like is left


def is_sidecar(path: Path, video_stems: set[str]) -> bool:
    """An ``.SRT`` named like a video of its folder (``DJI_0001.SRT`` beside ``DJI_0001.MP4``)."""
    return path.suffix.lower() in SIDECAR_EXTS and path.stem.lower() in video_stems


def has_positions(text: str) -> bool:
    """Whether ``text`` names a place: a position field, or a number with the decimals of a coordinate."""
    return any(p.search(text) for p in (_FIELD, _CALL, _PAIR)) or not strip_positions(text).safe


def strip_positions(text: str) -> Stripped:
    """``text`` without the fields that give a position, and whether any coordinate-like number is left."""
    removed = 0
    for pattern in (_FIELD, _CALL, _PAIR):
        text, n = pattern.subn("", text)
        removed += n
    text = re.sub(r"[ \t]{2,}", " ", text)
    timing = re.compile(r"^\d\d:\d\d:\d\d,\d{3} --> ")
    left = [ln for ln in text.splitlines() if not timing.match(ln) and _COORDINATE.search(ln)]
    return Stripped(text, removed, not left)
