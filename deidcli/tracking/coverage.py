"""Cover every frame of a tracked object, not only the frames its detector fired on.

Frames are held back in a short look-ahead buffer. When a track is found again after missing some frames, the
boxes in between are interpolated into the frames still held (backwards fill); a newly found track is also carried
a few frames back; after a track's last detection its box is predicted forwards from its motion for a few frames,
grown with its speed. Each tracked box is smoothed with a centred average over its neighbours and never shrinks
below the raw detection. All raw detections are always kept, tracked or not.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from deidcli.detections import Detections

T = TypeVar("T")


@dataclass(frozen=True)
class CoverageSettings:
    lookahead: int = 12  # frames held back (about half a second at 25 fps)
    hold: int = 5  # frames a track stays covered after its last detection, and before its first
    smooth: int = 2  # centred smoothing radius in frames
    motion_growth: float = 1.0  # predicted boxes grow by this times the distance moved since the last detection

    @classmethod
    def for_rate(cls, fps: float | None, lookahead_s: float = 0.5, hold_s: float = 0.2) -> "CoverageSettings":
        fps = float(fps or 25.0)
        return cls(lookahead=max(1, round(lookahead_s * fps)), hold=max(1, round(hold_s * fps)))


@dataclass
class _Entry(Generic[T]):
    index: int
    item: T
    dets: Detections
    added: list[tuple[np.ndarray, int, int]] = field(default_factory=list)  # (box, track id, class id)


@dataclass
class _Track:
    class_id: int
    history: deque  # (frame index, box) of detections, oldest first


def _grow(box: np.ndarray, factor: float) -> np.ndarray:
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([c - half, c + half])


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


class TemporalCoverage(Generic[T]):
    """Push frames with their tracked detections; get them back ``lookahead`` frames later with every box."""

    def __init__(self, settings: CoverageSettings) -> None:
        self.s = settings
        self._buffer: deque[_Entry[T]] = deque()
        self._tracks: dict[int, _Track] = {}
        self.filled_boxes = 0  # boxes added to frames where the detector missed a tracked object
        self.track_frames: dict[int, list[int]] = {}  # track id -> [first frame, last frame, detections, fills]

    def push(self, index: int, item: T, dets: Detections) -> list[tuple[T, Detections]]:
        """Add frame ``index`` (its detections must carry ``tracker_id``); return frames now complete."""
        ids = dets.tracker_id if dets.tracker_id is not None else np.full(len(dets), -1)
        for box, tid, cls in zip(dets.xyxy.astype(np.float64), ids, dets.class_id):
            if tid < 0:
                continue
            track = self._tracks.get(int(tid))
            if track is None:
                track = self._tracks[int(tid)] = _Track(int(cls), deque(maxlen=self.s.lookahead + self.s.hold + 4))
                self.track_frames[int(tid)] = [index, index, 0, 0]
                self._fill_before_start(int(tid), track, index, box)
            else:
                self._fill_gap(int(tid), track, index, box)
            track.history.append((index, box))
            stats = self.track_frames[int(tid)]
            stats[1], stats[2] = index, stats[2] + 1
        self._buffer.append(_Entry(index, item, dets))
        out = []
        while len(self._buffer) > self.s.lookahead:
            out.append(self._finish(self._buffer.popleft()))
        self._prune(index)
        return out

    def flush(self) -> list[tuple[T, Detections]]:
        out = [self._finish(e) for e in self._buffer]
        self._buffer.clear()
        return out

    # --- filling -------------------------------------------------------------------------------------

    def _held(self, index: int) -> _Entry | None:
        if not self._buffer or index < self._buffer[0].index:
            return None
        pos = index - self._buffer[0].index
        return self._buffer[pos] if pos < len(self._buffer) and self._buffer[pos].index == index else None

    def _add(self, index: int, box: np.ndarray, tid: int, cls: int) -> None:
        entry = self._held(index)
        if entry is not None:
            entry.added.append((box, tid, cls))
            self.filled_boxes += 1
            self.track_frames[tid][3] += 1

    def _fill_gap(self, tid: int, track: _Track, index: int, box: np.ndarray) -> None:
        j, last = track.history[-1]
        step = np.abs(box - last).max() / max(index - j, 1)
        for m in range(j + 1, index):
            t = (m - j) / (index - j)
            mid = (1 - t) * last + t * box
            size = max(mid[2] - mid[0], mid[3] - mid[1], 1.0)
            self._add(m, _grow(mid, 1.0 + min(self.s.motion_growth * step / size, 1.0)), tid, track.class_id)

    def _fill_before_start(self, tid: int, track: _Track, index: int, box: np.ndarray) -> None:
        # The detector usually sees a face a little after it becomes visible (entering, turning, sharpening).
        for k in range(1, self.s.hold + 1):
            self._add(index - k, _grow(box, 1.0 + 0.05 * k), tid, track.class_id)

    def _predicted(self, track: _Track, index: int) -> np.ndarray | None:
        before = [(i, b) for i, b in track.history if i < index]
        if not before or any(i >= index for i, _ in track.history):
            return None  # seen at or after this frame: detections and gap filling cover it
        i1, b1 = before[-1]
        if index - i1 > self.s.hold:
            return None
        v = (b1 - before[-2][1]) / (i1 - before[-2][0]) if len(before) > 1 else np.zeros(4)
        dt = index - i1
        box = b1 + v * dt
        size = max(b1[2] - b1[0], b1[3] - b1[1], 1.0)
        moved = np.abs(v).max() * dt
        return _grow(box, 1.0 + min(self.s.motion_growth * moved / size, 1.0) + 0.05 * dt)

    def _smoothed(self, track: _Track, index: int) -> np.ndarray | None:
        near = [b for i, b in track.history if abs(i - index) <= self.s.smooth]
        return np.mean(near, axis=0) if near else None

    def _finish(self, e: _Entry[T]) -> tuple[T, Detections]:
        d = e.dets
        ids = d.tracker_id if d.tracker_id is not None else np.full(len(d), -1)
        boxes = d.xyxy.astype(np.float64).copy()
        for k, tid in enumerate(ids):
            track = self._tracks.get(int(tid))
            if track is not None:
                avg = self._smoothed(track, e.index)
                if avg is not None:
                    boxes[k] = _union(boxes[k], avg)
        extra = list(e.added)
        present = set(int(t) for t in ids if t >= 0) | {tid for _, tid, _ in extra}
        for tid, track in self._tracks.items():
            if tid in present:
                continue
            pred = self._predicted(track, e.index)
            if pred is not None:
                extra.append((pred, tid, track.class_id))
                self.filled_boxes += 1
                self.track_frames[tid][3] += 1
        if not extra:
            return e.item, Detections(boxes, d.confidence, d.class_id, d.landmarks, ids)
        xb = np.array([b for b, _, _ in extra])
        lm = None if d.landmarks is None else np.concatenate([d.landmarks, np.zeros((len(extra), 5, 2))])
        return e.item, Detections(
            np.concatenate([boxes, xb]),
            np.concatenate([d.confidence, np.zeros(len(extra))]),
            np.concatenate([d.class_id, [c for _, _, c in extra]]),
            lm,
            np.concatenate([ids, [t for _, t, _ in extra]]),
        )

    def _prune(self, index: int) -> None:
        horizon = index - self.s.lookahead - self.s.hold - 2
        for tid in [t for t, tr in self._tracks.items() if tr.history[-1][0] < horizon]:
            del self._tracks[tid]
