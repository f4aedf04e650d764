"""Temporal coverage: a tracked face is covered in the frames its detector missed, before, between and after."""

from __future__ import annotations

import numpy as np

from deidcli.detections import Detections, box_iou
from deidcli.tracking import ByteTracker, CoverageSettings, TemporalCoverage


def _walk(missing=(), last=12, n=16):
    """A face moving right 6 px per frame, detected in every frame up to ``last`` except ``missing``."""
    frames = []
    for i in range(n):
        if i in missing or i > last:
            frames.append(Detections.empty())
        else:
            frames.append(Detections([[100 + 6 * i, 50, 160 + 6 * i, 130]], [0.9], [0]))
    return frames


def _run(frames, settings=CoverageSettings(lookahead=6, hold=3)):
    tracker, cov, out = ByteTracker(25), TemporalCoverage(settings), []
    for i, d in enumerate(frames):
        d.tracker_id = tracker.update(d)
        out += cov.push(i, i, d)
    out += cov.flush()
    assert [i for i, _ in out] == list(range(len(frames))), "every frame comes out once, in order"
    return [d for _, d in out], cov


def _truth(i):
    return np.array([[100 + 6 * i, 50, 160 + 6 * i, 130]], dtype=float)


def _covers(d: Detections, truth: np.ndarray) -> bool:
    """The truth box lies inside one of the boxes (within a pixel)."""
    t = truth[0]
    return any(b[0] <= t[0] + 1 and b[1] <= t[1] + 1 and b[2] >= t[2] - 1 and b[3] >= t[3] - 1 for b in d.xyxy)


def test_gap_is_filled_backwards():
    out, cov = _run(_walk(missing={5, 6, 7}))
    for i in (5, 6, 7):
        assert _covers(out[i], _truth(i)), (i, out[i].xyxy)
        assert out[i].confidence.max() == 0.0, "filled boxes are marked with confidence 0"
    assert len({int(t) for d in out for t in d.tracker_id}) == 1, "one person, one track"


def test_lost_track_is_held_forwards_with_motion():
    out, _ = _run(_walk(last=9))
    for i in (10, 11, 12):
        assert _covers(out[i], _truth(i)), (i, out[i].xyxy)
    assert len(out[14]) == 0, "held only for `hold` frames"


def test_new_track_is_carried_back():
    frames = [Detections.empty()] * 3 + _walk(n=10)[3:]
    out, _ = _run(frames)
    assert len(out[2]) == 1 and box_iou(out[2].xyxy, _truth(3))[0, 0] > 0.7


def test_raw_detections_always_kept_and_never_shrunk():
    frames = _walk()
    frames[4] = Detections([[124, 50, 184, 130], [400, 400, 420, 420]], [0.9, 0.05], [0, 0])  # weak extra box
    out, _ = _run(frames)
    assert box_iou(out[4].xyxy, [[400, 400, 420, 420]]).max() > 0.99
    for i in range(13):
        assert _covers(out[i], _truth(i))


def test_untracked_input_passes_through():
    cov = TemporalCoverage(CoverageSettings(lookahead=2, hold=1))
    d = Detections([[0, 0, 10, 10]], [0.5], [0])
    out = cov.push(0, "a", d) + cov.push(1, "b", d) + cov.push(2, "c", d) + cov.flush()
    assert [x for x, _ in out] == ["a", "b", "c"] and all(len(dd) == 1 for _, dd in out)
