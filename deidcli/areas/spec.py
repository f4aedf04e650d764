"""The areas file of ``--areas``: polygons drawn in pixels, each fixed on the screen or held on the ground.

```
{"areas": [{"polygon": [[120, 400], [300, 380], [320, 520], [100, 530]], "frame": 0, "anchor": "ground",
            "action": "mask", "name": "garden"}]}
```
JSON or YAML. Every mistake is refused before any frame is read, with the file and the area's number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from shapely.geometry import Polygon
from shapely.validation import explain_validity

from deidcli.errors import AreaInputError

ACTIONS = ("mask", "keep")  # mask: anonymized wherever seen; keep: nothing inside is anonymized
ANCHORS = ("frame", "ground")  # frame: fixed on the screen; ground: tracked on the ground from its frame
KEYS = {"polygon", "action", "anchor", "frame", "start", "end", "name", "margin"}


@dataclass(frozen=True)
class AreaSpec:
    """One area as the user drew it."""

    name: str
    polygon: np.ndarray  # (K, 2) float64 pixels of the frame it was drawn on (x right, y down)
    action: str = "mask"
    anchor: str = "frame"
    frame: int = 0  # ground: the frame it was drawn on
    start: float | None = None  # seconds from which it applies (None: the start); for a ground area, its shot's
    end: float | None = None  # seconds until which it applies (None: the end)
    margin: float = 0.0  # pixels the polygon is grown by on its own frame (shrunk for keep)

    def active(self, time_s: float) -> bool:
        return (self.start is None or time_s >= self.start) and (self.end is None or time_s <= self.end)


def check_ring(points, where: str, degrees: bool = False) -> Polygon:
    """A shapely polygon of ``points`` ((K, 2) pairs), refused with ``where`` named when it has fewer than three
    distinct points, non-finite numbers, or crosses itself (shapely's validity: a bow-tie hides the wrong side)."""
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise AreaInputError(f"{where}: the polygon's points must be pairs of numbers") from None
    if pts.ndim != 2 or pts.shape[1] < 2 or pts.shape[1] > (3 if degrees else 2):
        raise AreaInputError(f"{where}: the polygon must be a list of [x, y] points")
    pts = pts[:, :2]
    if not np.isfinite(pts).all():
        raise AreaInputError(f"{where}: the polygon has a point that is not a finite number")
    if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]  # a closed ring (GeoJSON's) counts its first point once
    if len(np.unique(pts, axis=0)) < 3:
        raise AreaInputError(f"{where}: a polygon needs at least three distinct points")
    poly = Polygon(pts)
    if not poly.is_valid:
        raise AreaInputError(f"{where}: the polygon crosses itself ({explain_validity(poly)})")
    if poly.area <= 0:
        raise AreaInputError(f"{where}: the polygon encloses no area")
    return poly


def _number(item: dict, key: str, where: str, default=None, minimum: float | None = None):
    value = item.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise AreaInputError(f"{where}: {key} must be a number, not {value!r}")
    if minimum is not None and value < minimum:
        raise AreaInputError(f"{where}: {key} must be at least {minimum:g}")
    return value


def parse_areas(data, source: str) -> list[AreaSpec]:
    """The areas in ``data`` (the file's parsed content); ``source`` names the file in errors."""
    items = data.get("areas") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise AreaInputError(f"{source}: expected {{\"areas\": [...]}} or a list of areas")
    if not items:
        raise AreaInputError(f"{source}: no areas in the file")
    out = []
    for i, item in enumerate(items, 1):
        where = f"{source}: area {i}"
        if not isinstance(item, dict):
            raise AreaInputError(f"{where}: an area is a mapping with at least a polygon")
        if unknown := set(item) - KEYS:
            raise AreaInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYS))}")
        if "polygon" not in item:
            raise AreaInputError(f"{where}: no polygon")
        action, anchor = item.get("action", "mask"), item.get("anchor", "frame")
        if action not in ACTIONS:
            raise AreaInputError(f"{where}: action must be {' or '.join(ACTIONS)}, not {action!r}")
        if anchor not in ANCHORS:
            raise AreaInputError(f"{where}: anchor must be {' or '.join(ANCHORS)}, not {anchor!r}")
        poly = check_ring(item["polygon"], where)
        frame = _number(item, "frame", where, 0, 0)
        if int(frame) != frame:
            raise AreaInputError(f"{where}: frame must be a whole frame number")
        start, end = _number(item, "start", where, minimum=0), _number(item, "end", where, minimum=0)
        if start is not None and end is not None and end < start:
            raise AreaInputError(f"{where}: end ({end}) is before start ({start})")
        out.append(AreaSpec(str(item.get("name") or f"area {i}"), np.asarray(poly.exterior.coords[:-1]), action,
                            anchor, int(frame), start, end, float(_number(item, "margin", where, 0.0, 0))))
    return out


def read_json(path: Path, what: str, yaml_too: bool = False):
    """The parsed content of a place file, refused with its name (and the line, where the parser says) when it is
    missing, empty or does not parse; ``yaml_too``: a file that is not JSON may be YAML (unless named .json)."""
    if not path.is_file():
        raise AreaInputError(f"{path}: no such {what} file")
    text = path.read_text(errors="replace")
    if not text.strip():
        raise AreaInputError(f"{path}: the {what} file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if not yaml_too or path.suffix.lower() == ".json":
            raise AreaInputError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise AreaInputError(f"{path}{line}: neither JSON nor YAML ({getattr(exc, 'problem', None) or exc})") from None


def load_areas(path: Path) -> list[AreaSpec]:
    """Read an areas file (JSON, or YAML by its suffix or when it is not JSON)."""
    return parse_areas(read_json(path, "areas", yaml_too=True), str(path))
