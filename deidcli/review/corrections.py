"""A reviewer's corrections to the regions of one video, kept as a list of edits in a JSON file.

The file (``deid-corrections/1``) is written after every edit by ``deid review`` and read by
``deid run VIDEO --detections DETS --corrections FILE``, which applies the edits to the detections frame by frame:

* ``add``: a track the detector missed, from one box a person drew, carried by the visual tracker
  (:mod:`deidcli.tracking.visual`); its boxes are stored per frame, so a re-render needs no tracker;
* ``delete``: a track that is not what it says (a coat of arms taken for a face): its regions are not anonymized;
* ``trim``: a track kept only from ``first`` to ``last`` (inclusive), for a tracker that held a box too long;
* ``keep``: a person who consented: their track stays visible, and the report's note counts it apart from
  deletions;
* ``method``: one track anonymized with another method than its target's (a plate solid among frosted ones).

Edits apply in order; an edit to a track that does not exist is refused when it is made, not when it is applied.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deidcli.detections import Detections
from deidcli.errors import InvalidMediaError
from deidcli.targets import CLASS_ID, DETECTED

FORMAT = "deid-corrections/1"
OPS = ("add", "delete", "trim", "keep", "method")
ADDED_IDS = 1_000_000  # tracks a person adds are numbered from here, apart from the tracker's


@dataclass
class Corrections:
    """The edits made to one video's regions (``width`` x ``height``, ``frames`` frames)."""

    source: str
    width: int
    height: int
    frames: int
    edits: list[dict] = field(default_factory=list)

    # --- file -----------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> "Corrections":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InvalidMediaError(f"{path}: cannot read corrections ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise InvalidMediaError(f"{path}: not a corrections file (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidMediaError(f"{path}: not a deid corrections file (made by `deid review`)")
        out = cls(str(data["source"]), int(data["width"]), int(data["height"]), int(data["frames"]))
        for edit in data.get("edits", []):
            out._check(edit)
            out.edits.append(edit)
        return out

    def save(self, path: Path) -> None:
        """Written whole to a temporary file and renamed, so a reader never sees half an edit."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "source": self.source, "width": self.width,
                                   "height": self.height, "frames": self.frames, "edits": self.edits}, indent=1))
        os.replace(tmp, path)

    # --- edits ----------------------------------------------------------------------------------------------------

    def add(self, boxes: dict[int, np.ndarray], target: str = "face", drawn_at: int | None = None) -> int:
        """A new track of ``boxes`` by frame index; returns its track id."""
        ids = [e["track_id"] for e in self.edits if e["op"] == "add"]
        tid = max(ids, default=ADDED_IDS - 1) + 1
        first = min(boxes) if boxes else 0
        edit = {"op": "add", "track_id": tid, "target": target, "drawn_at": first if drawn_at is None else drawn_at,
                "boxes": {str(int(k)): [round(float(v), 2) for v in b] for k, b in sorted(boxes.items())}}
        self._check(edit)
        self.edits.append(edit)
        return tid

    def edit(self, op: str, track_id: int, known: set[int], first: int | None = None, last: int | None = None,
             method: str | None = None, target: str | None = None) -> None:
        """``delete``, ``keep``, ``trim`` (with ``first`` and ``last``) or ``method`` (with ``method`` and the
        track's ``target``) of ``track_id``, which must be one of ``known`` (the detections' tracks) or an added
        one."""
        if int(track_id) not in known | self.added_ids():
            raise ValueError(f"no track {track_id}")
        edit: dict = {"op": op, "track_id": int(track_id)}
        if op == "trim":
            edit.update(first=first, last=last)
        if op == "method":
            edit.update(method=method, target=target)
        self._check(edit)
        self.edits.append(edit)

    def summary(self) -> str:
        """The edits counted, for the report: "1 track(s) added, 2 kept visible (consented)"."""
        words = {"add": "track(s) added", "delete": "deleted", "trim": "trimmed", "keep": "kept visible (consented)",
                 "method": "given their own method"}
        counts = [(sum(e["op"] == op for e in self.edits), what) for op, what in words.items()]
        return ", ".join(f"{n} {what}" for n, what in counts if n) or "none"

    def undo(self) -> dict | None:
        return self.edits.pop() if self.edits else None

    def added_ids(self) -> set[int]:
        return {e["track_id"] for e in self.edits if e["op"] == "add"}

    def _check(self, edit: dict) -> None:
        op = edit.get("op")
        if op not in OPS:
            raise ValueError(f"unknown edit {op!r} (one of {', '.join(OPS)})")
        if not isinstance(edit.get("track_id"), int):
            raise ValueError("an edit needs an integer track_id")
        if op == "add":
            if edit.get("target") not in DETECTED:
                raise ValueError(f"target must be one of {', '.join(DETECTED)}")
            boxes = edit.get("boxes")
            if not isinstance(boxes, dict) or not boxes:
                raise ValueError("an added track needs at least one box")
            for k, b in boxes.items():
                if not (k.isdigit() and int(k) < max(self.frames, 1)):
                    raise ValueError(f"frame {k} is not in the video")
                if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                                    for v in b)):
                    raise ValueError("a box is four numbers: x1, y1, x2, y2")
                x1, y1, x2, y2 = b
                if not (x2 > x1 and y2 > y1 and x2 > 0 and y2 > 0 and x1 < self.width and y1 < self.height):
                    raise ValueError(f"box {b} is empty or outside the {self.width}x{self.height} frame")
        if op == "method":
            from deidcli.methods import METHODS

            if edit.get("method") not in METHODS:
                raise ValueError(f"unknown method {edit.get('method')!r}")
            if edit.get("target") not in DETECTED:
                raise ValueError(f"target must be one of {', '.join(DETECTED)}")
            if METHODS[edit["method"]].faces_only and edit["target"] != "face":
                raise ValueError(f"method {edit['method']!r} hides faces only, not a {edit['target']}")
        if op == "trim":
            first, last = edit.get("first"), edit.get("last")
            if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last):
                raise ValueError("a trim needs whole frames first <= last")

    # --- applying -------------------------------------------------------------------------------------------------

    def rules(self) -> "_Rules":
        return _Rules.of(self.edits)

    def apply(self, index: int, dets: Detections, rules: "_Rules | None" = None) -> Detections:
        """The regions of frame ``index`` after every edit: removed tracks out, trimmed ones cut, added ones in."""
        r = rules or self.rules()
        if len(dets) and dets.tracker_id is not None and (r.removed or r.spans):
            tids = dets.tracker_id
            keep = np.array([not r.hidden_at(int(t), index) for t in tids], dtype=bool)
            dets = dets[keep]
        extra = [(tid, cid, box) for tid, cid, boxes in r.added if (box := boxes.get(index)) is not None
                 and not r.hidden_at(tid, index)]
        if not extra:
            return dets
        added = Detections([b for _, _, b in extra], np.ones(len(extra)), [c for _, c, _ in extra],
                           tracker_id=[t for t, _, _ in extra])
        return _concat(dets, added)


@dataclass
class _Rules:
    """The edits folded into look-ups, once per run."""

    removed: dict[int, str]  # track -> "delete" or "keep"
    spans: dict[int, tuple[int, int]]
    added: list[tuple[int, int, dict[int, list[float]]]]  # (track, class id, {frame: box})
    methods: dict[int, tuple[str, str]]  # track -> (target, its own method)

    @classmethod
    def of(cls, edits: list[dict]) -> "_Rules":
        removed: dict[int, str] = {}
        spans: dict[int, tuple[int, int]] = {}
        added = []
        methods: dict[int, tuple[str, str]] = {}
        for e in edits:
            if e["op"] in ("delete", "keep"):
                removed[e["track_id"]] = e["op"]
            elif e["op"] == "trim":
                spans[e["track_id"]] = (e["first"], e["last"])
            elif e["op"] == "method":
                methods[e["track_id"]] = (e["target"], e["method"])
            else:
                added.append((e["track_id"], CLASS_ID[e["target"]], {int(k): v for k, v in e["boxes"].items()}))
        return cls(removed, spans, added, methods)

    def hidden_at(self, tid: int, index: int) -> bool:
        """Is track ``tid`` taken out at frame ``index`` (removed, or outside its trimmed span)?"""
        if tid in self.removed:
            return True
        span = self.spans.get(tid)
        return span is not None and not span[0] <= index <= span[1]


def _concat(a: Detections, b: Detections) -> Detections:
    if not len(a):
        return b
    ids = a.tracker_id if a.tracker_id is not None else np.full(len(a), -1)
    polygons = None
    if a.polygons is not None:
        polygons = np.concatenate([a.polygons, np.full(len(b), None, dtype=object)])
    landmarks = None
    if a.landmarks is not None:
        landmarks = np.concatenate([a.landmarks, np.full((len(b), 5, 2), np.nan, np.float32)])
    return Detections(np.concatenate([a.xyxy, b.xyxy]), np.concatenate([a.confidence, b.confidence]),
                      np.concatenate([a.class_id, b.class_id]), landmarks=landmarks,
                      tracker_id=np.concatenate([ids, b.tracker_id]), polygons=polygons)
