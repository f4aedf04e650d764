"""One review of one video as data: its regions, the reviewer's corrections and sign-off, and what deserves a look.

Everything the review page shows or changes is a call here, so a script can review too (and the tests do).
The regions are those of a ``deid detect`` file, which holds exactly what ``deid run --detections`` anonymizes:
the reviewed output is rendered from them, and re-rendered from them with the corrections.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deidcli.detection.keyframes import search_around
from deidcli.detections import Detections, box_iou
from deidcli.detections_io import read_detections
from deidcli.errors import ConfigError
from deidcli.review import approval
from deidcli.review.corrections import Corrections
from deidcli.review.frames import FrameSource
from deidcli.targets import TARGETS
from deidcli.tracking.visual import CARRY_LIMIT, carry

EMPTY_STRETCH_S = 2.0  # this long with no region at all is flagged for a look
THUMB = 96  # thumbnail side, pixels
ANCHOR_THRESHOLD, ANCHOR_IOU = 0.2, 0.2  # a face drawn was missed: look for it at a low score


@dataclass
class Track:
    track_id: int
    target: str
    frames: list[int] = field(default_factory=list)  # every frame the track has a region in
    detected: int = 0  # of those, found by the detector (the rest filled by the tracker)
    state: str = "detected"  # detected, untracked, added, deleted, kept, trimmed
    method: str | None = None  # a reviewer's method for this track, else the target's

    def summary(self, method: str) -> dict:
        f = self.frames
        return {"track_id": self.track_id, "target": self.target, "method": self.method or method,
                "own_method": self.method is not None, "state": self.state,
                "first": f[0] if f else None, "last": f[-1] if f else None, "frames": len(f),
                "detected": self.detected, "filled": len(f) - self.detected,
                "gaps": sum(1 for a, b in zip(f, f[1:]) if b - a > 1),
                "thumbs": [f[0], f[len(f) // 2], f[-1]] if f else []}


class ReviewSession:
    """The review of ``anonymized``, made from ``original`` with the regions of ``detections``.

    ``methods``: each target's method in the render (for the page and the re-render command); ``leaks``: the
    audit's leak candidates (``deidcli.audit.FaceCheck``), listed first when given."""

    def __init__(self, original: Path, anonymized: Path, detections: Path, methods: dict[str, str],
                 corrections: Path | None = None, leaks: list | None = None, render_args: list[str] | None = None
                 ) -> None:
        self.original, self.anonymized, self.detections = Path(original), Path(anonymized), Path(detections)
        self.sources = {"original": FrameSource(self.original), "anonymized": FrameSource(self.anonymized)}
        src = self.sources["original"]
        if len(self.sources["anonymized"]) != len(src):
            raise ConfigError(f"{anonymized}: {len(self.sources['anonymized'])} frames, not the {len(src)} of "
                              f"{original}: is it made from it?")
        self.width, self.height, self.fps = src.width, src.height, src.fps
        self.stored = list(read_detections(self.detections, self.width, self.height))
        if len(self.stored) != len(src):
            raise ConfigError(f"{detections}: {len(self.stored)} frames of regions for a video of {len(src)}")
        self.corrections_path = Path(corrections or approval.corrections_path(self.anonymized))
        self.corrections = (Corrections.load(self.corrections_path) if self.corrections_path.is_file() else
                            Corrections(self.original.name, self.width, self.height, len(src)))
        self.methods = methods
        self.leaks = leaks or []
        self.render_args = render_args or []
        self._known = {int(t) for d in self.stored if d.tracker_id is not None for t in d.tracker_id if t >= 0}
        self._thumbs: dict[tuple[int, int], bytes] = {}
        self._detector = None  # CenterFace, loaded when a face is first drawn
        self._version = 0  # counts the corrections made here, for the tracks kept between them
        self._tracks: tuple[int, list[Track]] | None = None

    # --- what the page shows --------------------------------------------------------------------------------------

    def regions(self, n: int) -> Detections:
        """Frame ``n``'s regions with the corrections applied (what a re-render anonymizes)."""
        return self.corrections.apply(n, self.stored[n])

    def region_records(self, n: int) -> list[dict]:
        """Frame ``n``'s regions as the page draws them, those the corrections took out included (marked)."""
        if not 0 <= n < len(self.stored):
            raise IndexError(f"frame {n} is not in the video")
        out = []
        rules = self.corrections.rules()
        before, after = self.stored[n], self.corrections.apply(n, self.stored[n], rules)
        for dets, removed in ((after, False), (before, True)):
            for box, score, cid, tid in zip(dets.xyxy, dets.confidence, dets.class_id,
                                            dets.tracker_id if dets.tracker_id is not None else [-1] * len(dets)):
                if removed and not rules.hidden_at(int(tid), n):
                    continue
                out.append({"box": [round(float(v), 1) for v in box], "target": TARGETS[int(cid)],
                            "track_id": int(tid), "score": round(float(score), 3), "removed": removed})
        return out

    def tracks(self) -> list[Track]:
        """Every track with the corrections applied (kept until the next correction: a long video has many)."""
        if self._tracks is None or self._tracks[0] != self._version:
            self._tracks = (self._version, self._build_tracks())
        return self._tracks[1]

    def _build_tracks(self) -> list[Track]:
        rules = self.corrections.rules()
        tracks: dict[int, Track] = {}
        for n, dets in enumerate(self.stored):
            ids = dets.tracker_id if dets.tracker_id is not None else np.full(len(dets), -1)
            for tid, cid, score in zip(ids, dets.class_id, dets.confidence):
                # regions the tracker did not follow (too small or too brief) share one lane, "untracked"
                t = tracks.setdefault(int(tid), Track(int(tid), TARGETS[int(cid)], state="detected" if tid >= 0
                                                      else "untracked"))
                if not t.frames or t.frames[-1] != n:
                    t.frames.append(n)
                    t.detected += int(score > 0)
        for tid, cid, boxes in rules.added:
            tracks[tid] = Track(tid, TARGETS[cid], sorted(boxes), 0, "added")
        for t in tracks.values():
            if t.track_id in rules.methods:
                t.method = rules.methods[t.track_id][1]
            if t.track_id in rules.removed:
                t.state = {"delete": "deleted", "keep": "kept"}[rules.removed[t.track_id]]
            elif t.track_id in rules.spans:
                first, last = rules.spans[t.track_id]
                t.frames = [f for f in t.frames if first <= f <= last]
                t.state = "trimmed" if t.state != "added" else t.state
        return sorted(tracks.values(), key=lambda t: (t.frames[0] if t.frames else 0, t.track_id))

    def flags(self) -> list[dict]:
        """What deserves a look, most urgent first: the audit's leak candidates, then stretches where nothing was
        found, then tracks of one frame and tracks with gaps."""
        out = [{"kind": "leak", "frame": f.frame, "box": [round(float(v), 1) for v in f.box],
                "why": f"a face the audit finds in the output (detector {f.redetected:.2f}, SSIM {f.ssim:.2f})"}
               for f in self.leaks]
        rules = self.corrections.rules()
        per_frame = [len(self.corrections.apply(n, d, rules)) for n, d in enumerate(self.stored)]
        longest = max(1, round(EMPTY_STRETCH_S * (self.fps or 25)))
        start = None
        for n, count in enumerate(per_frame + [1]):
            if count == 0 and start is None:
                start = n
            elif count and start is not None:
                if n - start >= longest:
                    out.append({"kind": "empty", "frame": start, "last": n - 1,
                                "why": f"nothing anonymized for {(n - start) / (self.fps or 25):.1f} s"})
                start = None
        for t in self.tracks():
            if t.state in ("deleted", "kept", "untracked"):
                continue
            if len(t.frames) == 1:
                out.append({"kind": "short", "frame": t.frames[0], "track_id": t.track_id,
                            "why": f"{t.target} track {t.track_id} lasts one frame"})
            elif (s := t.summary(""))["gaps"]:
                out.append({"kind": "gap", "frame": t.frames[0], "track_id": t.track_id,
                            "why": f"{t.target} track {t.track_id} has {s['gaps']} gap(s)"})
        return out

    def state(self) -> dict:
        record = approval.approved(self.anonymized) if approval.record_path(self.anonymized).is_file() else None
        return {
            "video": {"frames": len(self.stored), "fps": self.fps, "width": self.width, "height": self.height,
                      "shown": list(self.sources["original"].shown), "original": self.original.name,
                      "anonymized": self.anonymized.name},
            "tracks": [t.summary(self.methods.get(t.target, "")) for t in self.tracks()],
            "flags": self.flags(),
            "edits": self.corrections.edits[-50:],
            "edit_count": len(self.corrections.edits),
            "stale": self.stale(),
            "approval": record,
            "rerender": self.rerender_command(),
            "methods": self.method_choices(),
        }

    @staticmethod
    def method_choices() -> dict[str, list[str]]:
        """The methods a track of each target may be given (the face-only ones for faces)."""
        from deidcli.methods import METHODS

        return {t: [m for m, spec in METHODS.items() if t == "face" or not spec.faces_only] for t in TARGETS[:4]}

    def stale(self) -> bool:
        """Were corrections saved after the output was rendered (so it does not show them yet)?"""
        return (self.corrections_path.is_file() and bool(self.corrections.edits)
                and self.corrections_path.stat().st_mtime > self.anonymized.stat().st_mtime)

    def rerender_command(self) -> str:
        parts = ["deid", "run", str(self.original), "-o", str(self.anonymized), "--detections", str(self.detections),
                 "--corrections", str(self.corrections_path), "--overwrite", *self.render_args]
        return shlex.join(parts)

    def thumbnail(self, track_id: int, which: int) -> bytes:
        """JPEG of the track's region in the original at its first (0), middle (1) or last (2) frame."""
        key = (track_id, which)
        if key not in self._thumbs:
            t = next((t for t in self.tracks() if t.track_id == track_id), None)
            if t is None or not t.frames or which not in (0, 1, 2):
                raise KeyError(track_id)
            n = t.summary("")["thumbs"][which]
            box = self._box_of(track_id, n)
            image = self.sources["original"].image(n)
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            pad = max(4, (y2 - y1) // 4)
            crop = image[max(0, y1 - pad):max(1, y2 + pad), max(0, x1 - pad):max(1, x2 + pad)]
            crop = crop if crop.size else image
            s = THUMB / max(crop.shape[:2])
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                              interpolation=cv2.INTER_AREA)
            self._thumbs[key] = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))[1].tobytes()
        return self._thumbs[key]

    def _box_of(self, track_id: int, n: int) -> np.ndarray:
        for tid, _, boxes in self.corrections.rules().added:
            if tid == track_id and n in boxes:
                return np.asarray(boxes[n])
        dets = self.stored[n]
        i = int(np.flatnonzero(dets.tracker_id == track_id)[0])
        return dets.xyxy[i]

    # --- what the reviewer changes --------------------------------------------------------------------------------

    def add_box(self, n: int, box: list[float], target: str = "face", limit: int = CARRY_LIMIT) -> dict:
        """A new track from one box drawn on frame ``n``, carried forwards and backwards by the visual tracker;
        saved at once. Returns the new track's summary."""
        if not 0 <= n < len(self.stored):
            raise ValueError(f"frame {n} is not in the video")
        box = np.clip(np.asarray(box, dtype=np.float32), 0, [self.width, self.height, self.width, self.height])
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            raise ValueError("draw a box at least 2 pixels wide and tall")
        boxes = {n: box}
        anchor = self._face_anchor() if target == "face" else None
        source = FrameSource(self.original)  # its own decoder: the page's keeps its place
        try:
            ahead = carry((source.image(i) for i in range(n, len(source))), box, limit, anchor)
            boxes.update({n + k: b for k, b in enumerate(ahead)})
            back = carry(_backwards(source, n), box, limit, anchor)
            boxes.update({n - k: b for k, b in enumerate(back)})
        finally:
            source.close()
        tid = self.corrections.add(boxes, target, drawn_at=n)
        self._saved()
        return next(t for t in self.tracks() if t.track_id == tid).summary(self.methods.get(target, ""))

    def _face_anchor(self):
        """``anchor(image, box)`` for the visual tracker: CenterFace's box in a crop around the tracked one, at the
        searching share of a low threshold, where it overlaps the tracked box (IoU 0.2)."""
        if self._detector is None:
            from deidcli.detection import build_detector

            self._detector = build_detector("centerface", ANCHOR_THRESHOLD, "cpu")
        detector = self._detector

        def anchor(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
            found = search_around(detector, image, box[None], 1.0)
            if not len(found):
                return None
            iou = box_iou(found.xyxy, box[None])[:, 0]
            best = int(np.argmax(iou))
            return found.xyxy[best] if iou[best] >= ANCHOR_IOU else None

        return anchor

    def edit(self, op: str, track_id: int, first: int | None = None, last: int | None = None,
             method: str | None = None) -> None:
        target = next((t.target for t in self.tracks() if t.track_id == track_id), None)
        self.corrections.edit(op, track_id, self._known, first, last, method, target)
        self._saved()

    def undo(self) -> dict | None:
        edit = self.corrections.undo()
        self._saved()
        return edit

    def _saved(self) -> None:
        self._version += 1
        self._thumbs.clear()
        self.corrections.save(self.corrections_path)

    def approve(self, user: str | None = None) -> dict:
        """Sign the output off as it is; refused while it does not show the saved corrections."""
        if self.stale():
            raise ValueError(f"the output predates the corrections: re-render it first ({self.rerender_command()})")
        return approval.approve(self.anonymized, len(self.corrections.edits), self.original, user)

    def close(self) -> None:
        for s in self.sources.values():
            s.close()


def _backwards(source: FrameSource, n: int, chunk: int = 24):
    """Frames ``n, n-1, ..., 0`` of ``source``, decoded ``chunk`` at a time in presentation order."""
    yield source.image(n)
    end = n
    while end > 0:
        start = max(0, end - chunk)
        frames = [source.image(i) for i in range(start, end)]
        yield from reversed(frames)
        end = start
