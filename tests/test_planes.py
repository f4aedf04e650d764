"""The writer pastes only the anonymized rectangles into the decoded 4:2:0 picture: every other pixel reaches the
encoder as it was decoded, and every pixel the anonymizer wrote is converted."""

from __future__ import annotations

import av
import numpy as np
import pytest

from conftest import ffmpeg, run_deid
from deidcli.detections_io import read_detections
from deidcli.methods.regions import grow_boxes
from deidcli.video.planes import chroma_rects, paste_regions, pastes


def _planes(seed: int, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    top = 1023 if dtype == np.uint16 else 255
    return np.random.default_rng(seed).integers(0, top + 1, (h * 3 // 2, w)).astype(dtype)


def _split(planes: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat, q = planes.reshape(-1), (h // 2) * (w // 2)
    return planes[:h], flat[h * w:h * w + q].reshape(h // 2, w // 2), flat[h * w + q:].reshape(h // 2, w // 2)


def _inside(rects, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in rects:
        mask[y1:y2, x1:x2] = True
    return mask


def test_rects_grow_to_the_chroma_grid_clip_and_merge():
    assert chroma_rects([(3, 5, 9, 10)], 100, 80) == [(2, 4, 10, 10)]
    assert chroma_rects([(-4, -3, 101, 81)], 100, 80) == [(0, 0, 100, 80)]
    assert chroma_rects([(10, 10, 10, 20)], 100, 80) == []  # empty
    merged = chroma_rects([(0, 0, 20, 20), (50, 50, 60, 60), (15, 15, 30, 30)], 100, 80)
    assert sorted(merged) == [(0, 0, 30, 30), (50, 50, 60, 60)]
    # a chain: the union of the first two then overlaps the third
    assert chroma_rects([(0, 0, 10, 10), (8, 0, 20, 10), (18, 8, 30, 20)], 100, 80) == [(0, 0, 30, 20)]


@pytest.mark.parametrize("pix_fmt,dtype", [("yuv420p", np.uint8), ("yuvj420p", np.uint8), ("yuv420p10le", np.uint16)])
def test_only_the_rects_change_and_they_hold_the_image(pix_fmt, dtype):
    h, w = 64, 96
    planes = _planes(0, h, w, dtype)
    top = 65535 if dtype == np.uint16 else 255
    image = np.random.default_rng(1).integers(0, top + 1, (h, w, 3)).astype(dtype)
    rects = [(5, 7, 30, 41), (60, 10, 95, 63), (0, 0, 1, 1)]  # a 1 px box becomes the 2x2 chroma cell
    out = paste_regions(planes, image, rects, pix_fmt)
    assert out.shape == planes.shape and out.dtype == planes.dtype
    inside = _inside(chroma_rects(rects, w, h), h, w)
    y0, u0, v0 = _split(planes, h, w)
    y1, u1, v1 = _split(out, h, w)
    assert np.array_equal(y1[~inside], y0[~inside])
    half = inside[::2, ::2]
    assert np.array_equal(u1[~half], u0[~half]) and np.array_equal(v1[~half], v0[~half])
    # inside: what converting the whole image gives (luma is per pixel; chroma filters a little across the border)
    rgb = "rgb48le" if dtype == np.uint16 else "rgb24"
    whole = av.VideoFrame.from_ndarray(image, format=rgb).reformat(format=pix_fmt).to_ndarray()
    yw, uw, vw = _split(whole, h, w)
    assert np.array_equal(y1[inside], yw[inside])
    step = 4 if dtype == np.uint16 else 1  # 10-bit levels
    assert np.abs(u1[half].astype(int) - uw[half]).mean() < 2 * step
    assert np.abs(v1[half].astype(int) - vw[half]).mean() < 2 * step
    assert np.array_equal(planes, _planes(0, h, w, dtype)), "the decoded planes must not be modified"


def test_paste_needs_the_same_format_size_and_depth():
    image = np.zeros((64, 96, 3), np.uint8)
    assert pastes(_planes(0, 64, 96), image, "yuv420p")
    assert not pastes(None, image, "yuv420p")
    assert not pastes(_planes(0, 64, 96), image, "yuv444p")
    assert not pastes(_planes(0, 32, 96), image, "yuv420p")  # another size
    assert not pastes(_planes(0, 64, 96), image.astype(np.uint16), "yuv420p")  # a deep image into 8-bit planes
    assert not pastes(_planes(0, 64, 96, np.uint16), image, "yuv420p10le")
    assert pastes(_planes(0, 64, 96, np.uint16), image.astype(np.uint16), "yuv420p10le")


def _decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_lossless_run_keeps_every_decoded_pixel_outside_the_regions(tmp_path, sample, pix_fmt):
    """With a lossless encoder (FFV1) the output differs from the decoded source only inside the anonymized
    rectangles, on every frame: nothing outside them went through a colour conversion."""
    src = tmp_path / f"src_{pix_fmt}.mkv"
    ffmpeg("-i", str(sample), "-t", "1", "-an", "-c:v", "ffv1", "-pix_fmt", pix_fmt, str(src))
    dets, out = tmp_path / "dets.jsonl", tmp_path / "out.mkv"
    r = run_deid("detect", src, "-o", dets, "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_deid("run", src, "-o", out, "--detections", dets, "--codec", "ffv1", "--quiet")
    assert r.returncode == 0, r.stderr
    before, after = _decoded(src), _decoded(out)
    assert len(before) == len(after) == 25
    h, w = 360, 640
    for a, b, found in zip(before, after, read_detections(dets, w, h)):
        assert len(found), "the astronaut is found in every frame"
        rects = chroma_rects([tuple(r) for r in grow_boxes(found.xyxy, 2.0, w, h)], w, h)
        inside = _inside(rects, h, w)
        ya, ua, va = _split(a, h, w)
        yb, ub, vb = _split(b, h, w)
        assert np.array_equal(ya[~inside], yb[~inside])
        half = inside[::2, ::2]
        assert np.array_equal(ua[~half], ub[~half]) and np.array_equal(va[~half], vb[~half])
        x1, y1, x2, y2 = found.xyxy[0].astype(int)
        assert not np.array_equal(ya[y1:y2, x1:x2], yb[y1:y2, x1:x2]), "the face itself changed"


@pytest.mark.parametrize("width", [6, 8, 20, 36, 54])
def test_a_deep_paste_is_the_same_every_time(width):
    """swscale's rgb48 -> yuv420p10 read bytes it never wrote for widths 2-8 past a multiple of 16 (8 luma samples
    of garbage, different each run; the test above failed in one clone of two): pasted crops are widened first."""
    h, w = 54, 96
    planes = _planes(0, h, w, np.uint16)
    image = np.random.default_rng(3).integers(0, 65536, (h, w, 3)).astype(np.uint16)
    first = paste_regions(planes, image, [(10, 0, 10 + width, h)], "yuv420p10le")
    assert all(np.array_equal(paste_regions(planes, image, [(10, 0, 10 + width, h)], "yuv420p10le"), first)
               for _ in range(30))
