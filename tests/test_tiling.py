"""Sliced inference: faces a few dozen pixels high in a 4K frame are found."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from deidcli.detection import build_detector, inference_scale
from deidcli.detection.tiling import TiledDetector, parse_tile, tile_grid
from deidcli.detections import box_iou


@pytest.mark.parametrize("w,h,t", [(3840, 2160, 960), (640, 480, 960), (2560, 1920, 1000)])
def test_tiles_cover_frame_with_overlap(w, h, t):
    tiles = tile_grid(w, h, t, t, 0.25)
    covered = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in tiles:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        covered[y1:y2, x1:x2] = True
    assert covered.all()


def test_auto_tiles_only_large_frames():
    assert parse_tile("auto", 3840, 2160, 960) == (960, 960)
    assert parse_tile("auto", 1920, 1080, 960) is None
    assert parse_tile("off", 3840, 2160, 960) is None
    assert parse_tile("1280x720", 640, 480, 960) == (1280, 720)


def _drone_frame():
    """A 4K frame with the astronaut's head shrunk to ~30 px, at three places, one across a tile border."""
    frame = np.full((2160, 3840, 3), 90, np.uint8)
    head = data.astronaut()[20:200, 150:290]  # the head with some hair and collar
    small = cv2.resize(head, (24, 31), interpolation=cv2.INTER_AREA)
    spots = [(400, 300), (1900, 1200), (718, 700)]  # the last straddles the first tile border (x = 720)
    truth = []
    for x, y in spots:
        frame[y : y + 31, x : x + 24] = small
        truth.append([x + 4, y + 3, x + 20, y + 25])
    return frame, np.array(truth, dtype=float)


def test_small_faces_in_4k_found_only_with_tiles():
    frame, truth = _drone_frame()
    base = build_detector("centerface")
    s = inference_scale(3840, 2160, "auto", 960)
    plain = base.detect(frame, s)
    tiled = TiledDetector(base, "auto", 960).detect(frame, s)
    found_plain = (box_iou(truth, plain.xyxy).max(axis=1) > 0.3).sum() if len(plain) else 0
    found_tiled = (box_iou(truth, tiled.xyxy).max(axis=1) > 0.3).sum()
    assert found_tiled == 3, tiled.xyxy
    assert found_plain < 3
