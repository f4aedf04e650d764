"""Write the anonymized regions into the decoded picture, so every other pixel reaches the encoder as it was decoded.

Converting a whole RGB frame back to YUV costs a full-frame pass and rounds every pixel of the picture twice (about
47 dB luma PSNR against the decoded frame on the street clip, before the encoder has lost anything). For 4:2:0
sources only the rectangles the anonymizer wrote are converted (aligned to the chroma grid, so no chroma sample
mixes pasted and decoded pixels) and pasted into a copy of the decoded planes: a frame without faces costs one copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import numpy as np

from deidcli.detections import merge_overlapping

# Planar 4:2:0 formats whose decoded planes PyAV hands over as one array (H * 3/2 rows of W samples).
PASTE_FORMATS = {"yuv420p": np.uint8, "yuvj420p": np.uint8, "yuv420p10le": np.uint16}

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, end exclusive


def chroma_rects(rects: Sequence[Rect], width: int, height: int) -> list[Rect]:
    """``rects`` grown to even corners (4:2:0 chroma covers 2x2 pixels), clipped to the frame, and overlapping
    ones merged into their union, so each pixel is pasted once and a crowd costs a few conversions."""
    out = []
    for x1, y1, x2, y2 in rects:
        x1, y1 = max(0, int(x1) - int(x1) % 2), max(0, int(y1) - int(y1) % 2)
        x2, y2 = min(width, int(x2) + int(x2) % 2), min(height, int(y2) + int(y2) % 2)
        if x2 > x1 and y2 > y1:
            out.append((x1, y1, x2, y2))
    return merge_overlapping(out)


def pastes(planes: np.ndarray | None, image: np.ndarray, pix_fmt: str) -> bool:
    """Whether ``planes`` (decoded, PyAV's packed 4:2:0 layout) can take ``image``'s regions for a ``pix_fmt``
    output: the same format, size and depth."""
    if planes is None or pix_fmt not in PASTE_FORMATS:
        return False
    h, w = image.shape[:2]
    dtype = PASTE_FORMATS[pix_fmt]
    deep = dtype == np.uint16
    return (planes.dtype == dtype and planes.shape == (h * 3 // 2, w) and h % 2 == 0 and w % 2 == 0
            and image.dtype == (np.uint16 if deep else np.uint8))


def paste_regions(planes: np.ndarray, image: np.ndarray, rects: Sequence[Rect], pix_fmt: str,
                  to_yuv: dict | None = None) -> np.ndarray:
    """A copy of the decoded ``planes`` with each of ``rects`` taken from ``image`` (``H x W x 3`` RGB, as the
    frame was read) and converted with ``to_yuv`` (swscale's destination matrix and range, as a whole frame is)."""
    h, w = image.shape[:2]
    out = planes.copy()
    flat = out.reshape(-1)
    luma = out[:h]
    quarter = (h // 2) * (w // 2)
    u = flat[h * w:h * w + quarter].reshape(h // 2, w // 2)
    v = flat[h * w + quarter:].reshape(h // 2, w // 2)
    rgb = "rgb48le" if image.dtype == np.uint16 else "rgb24"
    for x1, y1, x2, y2 in chroma_rects(rects, w, h):
        ch, cw = y2 - y1, x2 - x1
        # swscale's rgb48 -> yuv420p10 reads bytes it never wrote on rows 2-8 samples past a multiple of 16 wide
        # (8 luma samples of garbage, different each run): the crop is widened to one, its edge repeated
        crop = np.pad(image[y1:y2, x1:x2], ((0, 0), (0, -cw % 16), (0, 0)), mode="edge")
        yuv = av.VideoFrame.from_ndarray(crop, format=rgb).reformat(format=pix_fmt, **(to_yuv or {})).to_ndarray()
        pw = crop.shape[1]
        uv = yuv[ch:].reshape(-1)
        q = (ch // 2) * (pw // 2)
        luma[y1:y2, x1:x2] = yuv[:ch, :cw]
        u[y1 // 2:y2 // 2, x1 // 2:x2 // 2] = uv[:q].reshape(ch // 2, pw // 2)[:, :cw // 2]
        v[y1 // 2:y2 // 2, x1 // 2:x2 // 2] = uv[q:].reshape(ch // 2, pw // 2)[:, :cw // 2]
    return out
