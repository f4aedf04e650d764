"""Applying a method to regions of a frame: pixels outside the masks never change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES
from deidcli.detections import Detections
from deidcli.methods import METHODS, get_method
from deidcli.methods.regions import FallbackLog, RegionStyle, anonymize_frame, grow_boxes, region_mask


def frame(seed=0, h=240, w=320):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


DETS = Detections([[40, 30, 100, 110], [200, 150, 330, 260]], [0.9, 0.8], [0, 0])  # second box runs off the frame


@pytest.mark.parametrize("device", DEVICES)
# The adversarial methods need a face for their models to act on; tests/test_adversarial.py covers them.
@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.needs in (None, "basis")])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_outside_regions_unchanged(name, shape, device):
    img = frame()
    style = RegionStyle(get_method(name), mask_shape=shape, mask_scale=1.3)
    out = anonymize_frame(img, DETS, style, 0, device)
    grown = grow_boxes(DETS.xyxy, 1.3, img.shape[1], img.shape[0])
    outside = np.ones(img.shape[:2], bool)
    for x1, y1, x2, y2 in grown:
        outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], img[outside])
    assert out.shape == img.shape and out.dtype == np.uint8
    x1, y1, x2, y2 = DETS.xyxy[0].astype(int)
    assert not np.array_equal(out[y1:y2, x1:x2], img[y1:y2, x1:x2])
    assert np.array_equal(img, frame()), "the input frame must not be modified"


def test_face_box_centre_fully_covered():
    """Inside the ellipse (away from its feathered rim) the output is the method's, not a blend."""
    img = frame()
    style = RegionStyle(get_method("solid"), mask_shape="ellipse", mask_scale=1.3, color=(1.0, 0.0, 0.0))
    out = anonymize_frame(img, DETS[:1], style)
    x1, y1, x2, y2 = DETS.xyxy[0]
    cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
    core = out[cy - 20 : cy + 20, cx - 15 : cx + 15]
    assert np.all(core == [255, 0, 0])


def test_no_detections_returns_identical_copy():
    img = frame()
    out = anonymize_frame(img, Detections.empty(), RegionStyle(get_method("blur")))
    assert np.array_equal(out, img) and out is not img


def test_random_methods_repeatable_per_frame():
    img = frame()
    style = RegionStyle(get_method("noise"), seed=3)
    a = anonymize_frame(img, DETS, style, frame_index=5)
    b = anonymize_frame(img, DETS, style, frame_index=5)
    c = anonymize_frame(img, DETS, style, frame_index=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_grow_boxes_clips_to_frame():
    g = grow_boxes(np.array([[0, 0, 10, 10], [90, 90, 100, 100]]), 2.0, 100, 100)
    assert g.tolist() == [[0, 0, 15, 15], [85, 85, 100, 100]]


def test_mask_range_and_shape():
    m = region_mask(50, 40, "ellipse")
    assert m.shape == (1, 1, 50, 40)
    assert float(m.min()) == 0.0 and float(m.max()) == 1.0
    assert torch.all(region_mask(5, 7, "box") == 1)


# --- fail closed, region by region -----------------------------------------------------------------------------


def _method(fn, name="lazy", min_change=1.0):
    from dataclasses import replace

    return replace(METHODS["blur"], name=name, _fn=fn, min_change=min_change)


def test_a_method_that_leaves_the_region_unchanged_is_frosted_and_counted():
    from deidcli.methods.regions import FallbackLog

    img = frame()
    log = FallbackLog()
    lazy = _method(lambda x, *_: x.clone())
    out = anonymize_frame(img, DETS, RegionStyle(lazy), 0, "cpu", log)
    x1, y1, x2, y2 = DETS.xyxy[0].astype(int)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - img[y1:y2, x1:x2]).mean() > 10
    assert log.as_dict() == {"lazy left the region unchanged": 2}


def test_a_change_too_small_for_the_method_is_frosted_but_an_adversarial_change_is_not():
    from deidcli.methods.regions import FallbackLog

    img = frame()
    nudge = lambda x, *_: (x + 0.6 / 255).clamp(0, 1)  # noqa: E731 - under one grey level: rounds away
    two_levels = lambda x, *_: (x + 2 / 255).clamp(0, 1)  # noqa: E731
    log = FallbackLog()
    anonymize_frame(img, DETS, RegionStyle(_method(nudge)), 0, "cpu", log)
    assert log.total == 2
    log = FallbackLog()
    anonymize_frame(img, DETS, RegionStyle(_method(two_levels, "small", min_change=0.0)), 0, "cpu", log)
    assert log.total == 0, log.as_dict()


def test_a_method_that_misses_its_goal_is_frosted_with_its_reason():
    from deidcli.methods.regions import FallbackLog

    def missed(x, *_):
        return (x + 3 / 255).clamp(0, 1), torch.zeros(len(x), dtype=torch.bool), "the attack fell short"

    img = frame()
    log = FallbackLog()
    out = anonymize_frame(img, DETS[:1], RegionStyle(_method(missed, min_change=0.0)), 0, "cpu", log)
    x1, y1, x2, y2 = DETS.xyxy[0].astype(int)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - img[y1:y2, x1:x2]).max() > 3  # frost, not the 3-level change
    assert log.as_dict() == {"the attack fell short": 1}


@pytest.mark.parametrize("name", ["frost", "pixelate", "solid", "pca"])
def test_deep_frames_keep_16_bits_outside_the_regions(name):
    """10-bit sources are read as 16-bit RGB: regions are anonymized at that depth, the rest is left exactly."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 65536, (240, 320, 3), dtype=np.uint16)
    style = RegionStyle(get_method(name))
    out = anonymize_frame(img, DETS, style)
    assert out.dtype == np.uint16
    grown = grow_boxes(DETS.xyxy, style.mask_scale, img.shape[1], img.shape[0])
    outside = np.ones(img.shape[:2], bool)
    for x1, y1, x2, y2 in grown:
        outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], img[outside])
    x1, y1, x2, y2 = DETS.xyxy[0].astype(int)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - img[y1:y2, x1:x2]).mean() > 2000


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.needs in (None, "basis")])
@pytest.mark.parametrize("depth", [np.uint8, np.uint16])
def test_every_pixel_written_lies_in_a_reported_rectangle(name, depth):
    """The writer converts only the rectangles reported in ``changed`` (deidcli/video/planes.py): a pixel changed
    outside them would reach the output as the source had it. Frosted fallbacks report theirs too."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, np.iinfo(depth).max + 1, (240, 320, 3)).astype(depth)
    dets = Detections([[40, 30, 100, 110], [200, 150, 330, 260], [90, 100, 150, 170], [5, 5, 6, 6]],
                      [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0])  # overlapping, off the frame, a 1 px box
    changed: list = []
    out = anonymize_frame(img, dets, RegionStyle(get_method(name)), 0, "cpu", FallbackLog(), changed)
    written = np.zeros(img.shape[:2], bool)
    for x1, y1, x2, y2 in changed:
        assert 0 <= x1 < x2 <= img.shape[1] and 0 <= y1 < y2 <= img.shape[0]
        written[y1:y2, x1:x2] = True
    assert np.array_equal(out[~written], img[~written])
    assert written.any() and not np.array_equal(out[written], img[written])


def test_an_exact_crop_is_centred_on_a_face_cut_by_the_frame_edge():
    """A model's square (ifgvm's) is cut around the face even where the region runs past the frame: the crop the
    method gets is padded with edge pixels so the face sits at its centre, and only the frame's own pixels are
    written back."""
    from dataclasses import replace

    img = np.full((120, 160, 3), 60, np.uint8)
    img[8:13, 148:153] = 250  # the face's centre, 10 px from the top and 10 from the right
    dets = Detections(np.array([[140, 0, 160, 20]], np.float32), np.ones(1, np.float32), np.zeros(1))
    seen = []

    def darker(x, *_):
        seen.append(x.clone())
        return (x * 0.5).clamp(0, 1)

    exact = replace(METHODS["blur"], name="exact", _fn=darker, exact_crop=True)
    out = anonymize_frame(img, dets, RegionStyle(exact, mask_scale=2.0))
    crop = seen[0][0].mean(0)
    h, w = crop.shape
    assert (h, w) == (40, 40)  # the whole 2.0 square, though the frame keeps only its lower-left quarter
    ys, xs = np.nonzero((crop > 0.9).numpy())
    assert abs(ys.mean() - (h - 1) / 2) <= 1 and abs(xs.mean() - (w - 1) / 2) <= 1
    assert out.shape == img.shape and (out[:30, 130:] < img[:30, 130:]).any()
    assert (out[40:, :120] == img[40:, :120]).all()
