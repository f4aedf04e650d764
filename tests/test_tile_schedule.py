"""Tiles on every k-th frame (deidcli/detection/tile_schedule.py): the grid, the camera's motion, the schedule's
searches, and its recall against tiles on every frame at 4K."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from deidcli.config import DeidConfig
from deidcli.detection.camera_motion import CameraMotion
from deidcli.detection.keyframes import KeyframeCount, keyframe_detections
from deidcli.detection.tile_schedule import TILE_EVERY_S, TileLayer, tile_every
from deidcli.detection.tiling import TILE_OVERLAP, TiledDetector, even_tiles
from deidcli.detections import Detections
from deidcli.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("w,h", [(3840, 2160), (2560, 1920), (5120, 2880), (2704, 1520), (1000, 700), (4000, 961)])
def test_even_tiles_cover_the_frame_with_the_overlap_and_no_stretch(w, h):
    tiles = even_tiles(w, h, 960, 960)
    covered = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in tiles:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert x2 - x1 <= max(960, 0) or x2 - x1 == w
        assert (x2 - x1) % 32 == 0 or x2 - x1 == w
        assert (y2 - y1) % 32 == 0 or y2 - y1 == h
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    xs = sorted({(x1, x2) for x1, _, x2, _ in tiles})
    for (a1, a2), (b1, _) in zip(xs, xs[1:]):
        assert a2 - b1 >= round(TILE_OVERLAP * 960)  # a face up to 144 px lies whole in one tile


def test_a_4k_frame_costs_a_fifth_fewer_pixels_than_the_sliding_grid():
    from deidcli.detection.tiling import tile_grid

    def pixels(tiles):
        return sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in tiles)

    assert pixels(even_tiles(3840, 2160, 960, 960)) < 0.82 * pixels(tile_grid(3840, 2160, 960, 960, 0.25))


def _texture(w: int = 4400, h: int = 2600) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(np.tile(data.astronaut(), (2, 3, 1))), (w, h), interpolation=cv2.INTER_CUBIC)


def test_camera_motion_follows_a_pan():
    ground = _texture()
    motion = CameraMotion()
    for t in range(8):
        motion.measure(t, np.ascontiguousarray(ground[100 + 3 * t:100 + 3 * t + 2160, 40 + 14 * t:40 + 14 * t + 3840]))
    # the picture moves against the camera: 14 px left and 3 px up a frame
    assert np.allclose(motion.offset(7), [-14 * 7, -3 * 7], atol=6), motion.offset(7)
    assert np.allclose(motion.offset(0), [0, 0])


def test_camera_motion_counts_no_shift_across_a_cut():
    """A cut to an unrelated picture has no shift OpenCV trusts: the offset stays where it was."""
    motion = CameraMotion()
    ground = _texture()
    motion.measure(0, np.ascontiguousarray(ground[:2160, :3840]))
    motion.measure(1, np.ascontiguousarray(ground[:2160, 20:3860]))
    other = cv2.resize(data.coffee(), (3840, 2160))
    motion.measure(2, other)
    assert np.allclose(motion.offset(2), motion.offset(1)), motion.offset(2)


def _face(x: float, y: float, side: float = 16) -> Detections:
    box = np.array([[x, y, x + side, y + side]], dtype=float)
    return Detections(box, np.array([0.9]), np.zeros(1))


def test_between_tiled_frames_a_panned_face_is_searched_where_the_ground_went():
    """A face fixed on the ground while the camera pans 20 px a frame: found on frame 0 only (it scored under the
    threshold on frame 10). The search on the frames between looks where the pan took it, not where it was."""
    n, pan = 11, -20.0
    searched: list[tuple[int, np.ndarray]] = []

    def detect(i):
        return (_face(500, 300), Detections.empty()) if i == 0 else (Detections.empty(), Detections.empty())

    def near(i, lone):
        searched.append((i, lone.xyxy.copy()))
        return _face(500 + pan * i, 300)

    count = KeyframeCount()
    out = list(keyframe_detections(range(n), lambda i: i, detect, 10, count, near,
                                   motion=lambda i: np.array([pan * i, 0.0])))
    assert [i for i, _ in out] == list(range(n)) and count.searched == 9
    for i, boxes in searched:
        assert np.allclose(boxes[0], [500 + pan * i, 300, 516 + pan * i, 316])
    for i, d in out[1:-1]:
        assert np.allclose(d.xyxy[0], [500 + pan * i, 300, 516 + pan * i, 316])


def test_a_pair_across_a_pan_is_interpolated_where_the_camera_took_it():
    """Found on both sides 200 px apart (the camera moved, the face did not): paired once the motion is taken
    out, and interpolated on the ground, not searched."""
    def detect(i):
        return _face(500 + -20.0 * i, 300), Detections.empty()

    count = KeyframeCount()
    out = list(keyframe_detections(range(11), lambda i: i, detect, 10, count, lambda i, lone: None,
                                   motion=lambda i: np.array([-20.0 * i, 0.0])))
    assert count.interpolated == 9 and count.searched == 0
    for i, d in out:
        assert np.allclose(d.xyxy[0], [500 - 20 * i, 300, 516 - 20 * i, 316], atol=1e-6)


class _Base:
    name, default_threshold, threshold = "stub", 0.2, 0.2

    def __init__(self):
        self.crops = []

    def detect(self, image, scale=1.0, threshold=None):
        self.crops.append(image.shape[:2])
        return Detections.empty()


def test_tile_layer_searches_small_faces_in_crops_and_leaves_large_ones_to_the_whole_frame():
    base = _Base()
    layer = TileLayer(TiledDetector(base, "auto", 960), 0, whole_scale=0.25)
    image = np.zeros((2160, 3840, 3), np.uint8)
    lone = Detections.concat([_face(100, 100, 20), _face(2000, 1000, 300)])
    assert len(layer.near(image, lone)) == 0
    assert base.crops == [(96, 96)]  # the 20 px face at the tiles' own scale; the 300 px one is 75 px there
    crowd = Detections.concat([_face(x, y, 60) for x in range(0, 3840, 160) for y in range(0, 2160, 160)])
    assert layer.near(image, crowd) is None  # crops over most of the frame: its tiles run instead


def test_tile_every_follows_the_frame_rate_unless_set():
    assert tile_every(DeidConfig(), 30) == round(TILE_EVERY_S * 30) == 12
    assert tile_every(DeidConfig(), 10) == 4
    assert tile_every(DeidConfig(), None) == 10
    assert tile_every(DeidConfig(tile_every=1), 30) == 1
    with pytest.raises(ConfigError):
        DeidConfig(tile_every=61).validate()


@pytest.mark.slow
@pytest.mark.parametrize("material", ["street_4k", "fisheye", "aerial_pasted_4k"])
def test_the_schedule_covers_what_tiles_on_every_frame_find(material):
    """Against the old exhaustive tiling (whole frame and every tile of the sliding grid, every frame), the
    defaults cover every reference face in every frame but at most 1% of them, each near the threshold (0.2):
    scored under 0.4, where another grid's tile or the next frame scores it under 0.2. The street clip chose the
    settings; the fisheye clip and the faces pasted into the aerial frame confirm them."""
    from conftest import shared

    for path in (("videos", "street_faces_1080p.mp4"), ("videos", "fisheye_faces_2560x1920.mp4"),
                 ("persons", "stanford_drone_sdd_quad_video2_reference.jpg")):
        shared(*path)
    sys.path.insert(0, str(ROOT / "bench"))
    from tile_recall import measure

    r = measure(material, 12, DeidConfig())  # `python bench/tile_recall.py` measures 24
    assert r.faces > 30 and r.frames_tiled < r.frames / 2  # tiles every 0.4 s: 10 or 12 frames at 25-30 fps, 4 at 10
    assert len(r.uncovered) <= 0.01 * r.faces + 1, r.uncovered
    assert all(score < 0.4 for _, score, _ in r.uncovered), r.uncovered


def test_a_video_of_small_faces_runs_its_tiles_on_keyframes_and_covers_every_frame():
    """Five 4K frames with three 31 px heads (one across a tile border): tiles run on the first and last frame
    only, the frames between get the heads both found, interpolated, every head is covered in every frame, and the
    report says so."""
    from test_tiling import _drone_frame

    from deidcli.anonymizer import FrameAnonymizer
    from deidcli.evaluation.tile_recall import covered_share
    from deidcli.pipeline import FileResult, tracked_regions
    from deidcli.video.reader import Frame

    frame, truth = _drone_frame()
    cfg = DeidConfig(tile_every=4)
    result = FileResult("drone", "out", "video")
    frames = [Frame(i, i, frame) for i in range(5)]
    out = list(tracked_regions(frames, FrameAnonymizer.from_config(cfg), cfg, 25, result))
    assert [f.index for f, _ in out] == list(range(5))
    assert result.tiles is not None and result.tiles.detected == 2 and result.tiles.interpolated == 3
    for _, regions in out:
        assert all(covered_share(box, regions.xyxy, cfg.mask_scale) >= 0.9 for box in truth)
    assert {"tiles", "detect"} <= set(result.stages.seconds)
    report = result.as_dict()
    assert report["tiles"] == {"frames_tiled": 2, "frames_interpolated": 3, "frames_searched": 0}
