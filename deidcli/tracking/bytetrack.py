"""ByteTrack (Zhang et al., ECCV 2022): IoU association of detections to Kalman-predicted tracks, high scores first,
then the low-score leftovers to the tracks still unmatched.

Written for this project so the core needs no AGPL tracker; it follows the published algorithm and the parameter
names of its reference implementations (the ids it gives match Ultralytics' BYTETracker up to renumbering, tested).
Boxes are ``(N, 4)`` float ``xyxy`` in pixels; the Kalman state is ``(cx, cy, aspect w/h, height)`` and its velocities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)
_PROJECT = np.eye(4, 8)


def _xyah(xyxy: np.ndarray) -> np.ndarray:
    w, h = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
    return np.array([xyxy[0] + w / 2, xyxy[1] + h / 2, w / h if h > 0 else 0.0, h], dtype=np.float64)


def _kalman_initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = xyah[3]
    std = [2 * _STD_POSITION * h, 2 * _STD_POSITION * h, 1e-2, 2 * _STD_POSITION * h,
           10 * _STD_VELOCITY * h, 10 * _STD_VELOCITY * h, 1e-5, 10 * _STD_VELOCITY * h]
    return np.r_[xyah, np.zeros(4)], np.diag(np.square(std))


def _kalman_predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of constant velocity for ``(T, 8)`` means and ``(T, 8, 8)`` covariances."""
    h = mean[:, 3]
    std = np.stack([_STD_POSITION * h, _STD_POSITION * h, np.full_like(h, 1e-2), _STD_POSITION * h,
                    _STD_VELOCITY * h, _STD_VELOCITY * h, np.full_like(h, 1e-5), _STD_VELOCITY * h], axis=1)
    noise = np.zeros_like(cov)
    idx = np.arange(8)
    noise[:, idx, idx] = np.square(std)
    return mean @ _MOTION.T, _MOTION @ cov @ _MOTION.T + noise


def _kalman_update(mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = mean[3]
    innovation_cov = np.diag(np.square([_STD_POSITION * h, _STD_POSITION * h, 1e-1, _STD_POSITION * h]))
    projected_mean = _PROJECT @ mean
    projected_cov = _PROJECT @ cov @ _PROJECT.T + innovation_cov
    gain = np.linalg.solve(projected_cov, (cov @ _PROJECT.T).T).T  # 4 x 4, symmetric positive definite
    return mean + (xyah - projected_mean) @ gain.T, cov - gain @ projected_cov @ gain.T


class _State(IntEnum):
    TRACKED = 1
    LOST = 2
    REMOVED = 3


@dataclass(eq=False)
class _Track:
    """A detection (before activation) or a track: the Kalman state, once it has one, gives its box."""

    xyxy: np.ndarray
    score: float
    index: int  # row of the detection that last updated it, in that frame's Detections
    track_id: int = 0
    state: _State = _State.TRACKED
    activated: bool = False
    frame_id: int = 0
    start_frame: int = 0
    mean: np.ndarray | None = field(default=None, repr=False)
    cov: np.ndarray | None = field(default=None, repr=False)

    @property
    def box(self) -> np.ndarray:
        if self.mean is None:
            return self.xyxy
        cx, cy, a, h = self.mean[:4]
        w = a * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    def activate(self, track_id: int, frame_id: int) -> None:
        self.track_id, self.frame_id, self.start_frame = track_id, frame_id, frame_id
        self.mean, self.cov = _kalman_initiate(_xyah(self.xyxy))
        self.state = _State.TRACKED
        self.activated = frame_id == 1  # later tracks wait for a second sighting before they count

    def update(self, det: "_Track", frame_id: int) -> None:
        """Also re-activates a lost track (same id)."""
        self.mean, self.cov = _kalman_update(self.mean, self.cov, _xyah(det.xyxy))
        self.state, self.activated, self.frame_id = _State.TRACKED, True, frame_id
        self.score, self.index = det.score, det.index


def _iou_cost(a: list[_Track], b: list[_Track]) -> np.ndarray:
    """``1 - IoU`` for every pair, ``(len(a), len(b))``."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    boxes_a, boxes_b = np.stack([t.box for t in a]), np.stack([t.box for t in b])
    lt = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    rb = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(boxes_a[:, 2:] - boxes_a[:, :2], axis=1)
    area_b = np.prod(boxes_b[:, 2:] - boxes_b[:, :2], axis=1)
    return 1 - inter / (area_a[:, None] + area_b[None, :] - inter + 1e-7)


def _fuse_score(cost: np.ndarray, dets: list[_Track]) -> np.ndarray:
    """Weight IoU by detection score, so a confident detection wins a contested track."""
    if cost.size == 0:
        return cost
    return 1 - (1 - cost) * np.array([d.score for d in dets])[None, :]


def assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost matching where leaving a row and a column unmatched costs ``limit`` (the Jonker-Volgenant
    problem with a cost limit, as ``lap.lapjv(extend_cost=True, cost_limit=limit)`` poses it).

    Returns the matched ``(row, column)`` pairs and the unmatched rows and columns.
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    # Imported here, on the first frame with something to match: SciPy's optimize package takes 0.2 s to import,
    # which the start-up would otherwise pay before the first frame is read.
    from scipy.optimize import linear_sum_assignment

    extended = np.full((rows + cols, rows + cols), limit / 2.0)
    extended[:rows, :cols] = cost
    extended[rows:, cols:] = 0
    r, c = linear_sum_assignment(extended)
    matches = [(int(i), int(j)) for i, j in zip(r, c) if i < rows and j < cols and cost[i, j] <= limit]
    matched_rows = {i for i, _ in matches}
    matched_cols = {j for _, j in matches}
    return matches, [i for i in range(rows) if i not in matched_rows], [j for j in range(cols) if j not in matched_cols]


def _match(tracks: list[_Track], dets: list[_Track], limit: float, fuse: bool, frame_id: int,
           updated: list[_Track]) -> tuple[list[int], list[int]]:
    """Update each track with the detection matched to it (appending it to ``updated``); the unmatched tracks and
    detections are returned as indices."""
    cost = _iou_cost(tracks, dets)
    matches, tracks_left, dets_left = assign(_fuse_score(cost, dets) if fuse else cost, limit)
    for it, idet in matches:
        tracks[it].update(dets[idet], frame_id)
        updated.append(tracks[it])
    return tracks_left, dets_left


def _join(a: list[_Track], b: list[_Track]) -> list[_Track]:
    seen = {t.track_id for t in a}
    return a + [t for t in b if t.track_id not in seen]


def _without(a: list[_Track], b: list[_Track]) -> list[_Track]:
    gone = {t.track_id for t in b}
    return [t for t in a if t.track_id not in gone]


class ByteTrack:
    """Track ids for the boxes of consecutive frames (``update`` once per frame, in order)."""

    def __init__(self, frame_rate: float = 30.0, low_threshold: float = 0.1, high_threshold: float = 0.25,
                 match_threshold: float = 0.8, lost_seconds: float = 1.0) -> None:
        self.low, self.high, self.match = low_threshold, high_threshold, match_threshold
        self.max_lost = max(int(round(frame_rate * lost_seconds)), 1)
        self.frame_id = 0
        self._next_id = 0
        self._tracked: list[_Track] = []
        self._lost: list[_Track] = []

    def update(self, xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Track id ``(N,)`` of each box of the next frame, ``-1`` where no confirmed track holds it."""
        self.frame_id += 1
        fid = self.frame_id
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        dets = [_Track(xyxy[i], float(scores[i]), i) for i in range(len(scores))]
        high = [d for d in dets if d.score >= self.high]
        low = [d for d in dets if self.low < d.score < self.high]
        unconfirmed = [t for t in self._tracked if not t.activated]
        confirmed = [t for t in self._tracked if t.activated]
        activated: list[_Track] = []
        lost_now: list[_Track] = []
        removed: list[_Track] = []

        # 1. confident detections against every confirmed and lost track, moved to where it should be now
        pool = _join(confirmed, self._lost)
        if pool:
            mean, cov = np.stack([t.mean for t in pool]), np.stack([t.cov for t in pool])
            mean[[i for i, t in enumerate(pool) if t.state != _State.TRACKED], 7] = 0  # a lost box stops growing
            mean, cov = _kalman_predict(mean, cov)
            for t, m, c in zip(pool, mean, cov):
                t.mean, t.cov = m, c
        pool_left, high_left = _match(pool, high, self.match, True, fid, activated)

        # 2. low-score detections against the tracks still unmatched (occluded or blurred faces score low)
        remaining = [pool[i] for i in pool_left if pool[i].state == _State.TRACKED]
        for it in _match(remaining, low, 0.5, False, fid, activated)[0]:
            remaining[it].state = _State.LOST
            lost_now.append(remaining[it])

        # 3. tracks seen once so far get a second sighting or go
        high = [high[i] for i in high_left]
        unconfirmed_left, high_left = _match(unconfirmed, high, 0.7, True, fid, activated)
        for it in unconfirmed_left:
            unconfirmed[it].state = _State.REMOVED
            removed.append(unconfirmed[it])

        # 4. new tracks from what is left and confident
        for idet in high_left:
            self._next_id += 1
            high[idet].activate(self._next_id, fid)
            activated.append(high[idet])

        # 5. forget tracks lost for too long
        for t in self._lost:
            if fid - t.frame_id > self.max_lost:
                t.state = _State.REMOVED
                removed.append(t)
        tracked = _join([t for t in self._tracked if t.state == _State.TRACKED], activated)
        lost = _without(_without(self._lost, tracked) + lost_now, removed)
        self._tracked, self._lost = self._drop_duplicates(tracked, lost)

        ids = np.full(len(dets), -1, dtype=np.int64)
        for t in self._tracked:
            if t.activated and t.frame_id == fid:
                ids[t.index] = t.track_id
        return ids

    @staticmethod
    def _drop_duplicates(tracked: list[_Track], lost: list[_Track]) -> tuple[list[_Track], list[_Track]]:
        """Where a tracked and a lost track sit on the same place, keep the older one."""
        drop_tracked, drop_lost = set(), set()
        for p, q in zip(*np.nonzero(_iou_cost(tracked, lost) < 0.15)):
            if tracked[p].frame_id - tracked[p].start_frame > lost[q].frame_id - lost[q].start_frame:
                drop_lost.add(q)
            else:
                drop_tracked.add(p)
        return ([t for i, t in enumerate(tracked) if i not in drop_tracked],
                [t for i, t in enumerate(lost) if i not in drop_lost])
