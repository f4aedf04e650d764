"""Our ByteTrack against Ultralytics' BYTETracker (the tracker deid used before): the same ids, up to renumbering,
on scenes with crossings, misses, low scores and people leaving and coming back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from deidcli.tracking.bytetrack import ByteTrack, assign


def _scene(seed: int, frames: int = 60, people: int = 6):
    """Per frame ``(xyxy, scores)``: boxes moving with constant velocity plus jitter, sometimes missed, sometimes
    scoring low, sometimes with a spurious box."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [1500, 900], size=(people, 2))
    velocity = rng.uniform(-12, 12, size=(people, 2))
    size = rng.uniform(30, 140, size=(people, 1)) * np.array([[1.0, 1.3]])
    out = []
    for f in range(frames):
        boxes, scores = [], []
        for p in range(people):
            if rng.random() < 0.1 or (p == 0 and 20 <= f < 35):  # missed; person 0 leaves for 15 frames
                continue
            tl = start[p] + velocity[p] * f + rng.normal(0, 2, 2)
            boxes.append(np.r_[tl, tl + size[p] * rng.uniform(0.95, 1.05)])
            scores.append(rng.uniform(0.12, 0.25) if rng.random() < 0.2 else rng.uniform(0.3, 0.95))
        if rng.random() < 0.15:
            tl = rng.uniform([0, 0], [1800, 1000])
            boxes.append(np.r_[tl, tl + rng.uniform(20, 80, 2)])
            scores.append(rng.uniform(0.11, 0.5))
        order = rng.permutation(len(boxes))
        out.append((np.array(boxes, dtype=np.float32).reshape(-1, 4)[order], np.array(scores, np.float32)[order]))
    return out


class _Boxes:
    """The slice of ``ultralytics.engine.results.Boxes`` that BYTETracker reads."""

    def __init__(self, xyxy, conf):
        self.xyxy, self.conf, self.cls = xyxy, conf, np.zeros_like(conf)
        wh = xyxy[:, 2:] - xyxy[:, :2]
        self.xywh = np.concatenate([xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self):
        return len(self.conf)

    def __getitem__(self, index):
        return _Boxes(self.xyxy[index], self.conf[index])


def _ultralytics_ids(scene, fps=25):
    byte_tracker = pytest.importorskip("ultralytics.trackers.byte_tracker")
    args = SimpleNamespace(track_high_thresh=0.25, track_low_thresh=0.1, new_track_thresh=0.25,
                           track_buffer=fps, match_thresh=0.8, fuse_score=True)
    tracker = byte_tracker.BYTETracker(args)
    out = []
    for xyxy, conf in scene:
        ids = np.full(len(conf), -1)
        for row in np.asarray(tracker.update(_Boxes(xyxy, conf))).reshape(-1, 8):
            ids[int(row[7])] = int(row[4])
        out.append(ids)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_same_ids_as_ultralytics_up_to_renumbering(seed):
    scene = _scene(seed)
    theirs = _ultralytics_ids(scene)
    ours_tracker = ByteTrack(25, 0.1, 0.25)
    ours = [ours_tracker.update(xyxy, conf) for xyxy, conf in scene]
    mapping: dict[int, int] = {}
    for f, (a, b) in enumerate(zip(ours, theirs)):
        assert ((a < 0) == (b < 0)).all(), f"frame {f}: confirmed boxes differ\n{a}\n{b}"
        for x, y in zip(a[a >= 0], b[b >= 0]):
            assert mapping.setdefault(int(x), int(y)) == int(y), f"frame {f}: track {x} became another"
    assert len(set(mapping.values())) == len(mapping), "one of their tracks is two of ours"
    assert len(mapping) >= 6, "the scene has tracks to compare"


def test_a_person_who_leaves_for_less_than_a_second_keeps_the_id():
    tracker = ByteTrack(frame_rate=10)
    box = np.array([[100, 100, 160, 180]], dtype=float)
    first = tracker.update(box, [0.9]), tracker.update(box + 3, [0.9])
    for _ in range(8):
        assert len(tracker.update(np.zeros((0, 4)), [])) == 0
    back = tracker.update(box + 30, [0.9])
    assert first[1][0] > 0 and back[0] == first[1][0]
    for _ in range(12):
        tracker.update(np.zeros((0, 4)), [])
    assert tracker.update(box + 40, [0.9])[0] == -1, "after more than a second it is a new, unconfirmed track"


def test_assign_leaves_pairs_costlier_than_the_limit():
    cost = np.array([[0.1, 0.9], [0.85, 0.95], [0.2, 0.3]])
    matches, rows, cols = assign(cost, 0.8)
    assert sorted(matches) == [(0, 0), (2, 1)] and rows == [1] and cols == []
    assert assign(np.zeros((0, 3)), 0.8) == ([], [], [0, 1, 2])
