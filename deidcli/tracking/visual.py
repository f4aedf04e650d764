"""Carry one box drawn by a person through the video: OpenCV's MIL tracker, forwards and backwards.

MIL (multiple instance learning) is the tracker OpenCV ships without a model file (DaSiamRPN, Nano and Vit need
ONNX networks deid does not carry). It keeps the box's size and follows its content; it seldom reports a loss, so
the track also ends where the box leaves the frame, where the content under it stops looking like the drawn patch,
or after ``limit`` frames. A person trims what runs too long: a box held too long hides more, never less.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

CARRY_LIMIT = 900  # frames each way (30 s at 30 fps): a longer presence is drawn again further on
MIN_INSIDE = 0.5  # share of the box that must stay inside the frame
MIN_LIKENESS = 0.2  # normalized correlation of the box's grey patch with the drawn one, below which the track ends


def _grey_patch(image: np.ndarray, box: np.ndarray, size: int = 12) -> np.ndarray:
    """The box's content as a coarse grey thumbnail, zero mean and unit norm: a few pixels of the tracker's
    wobble leave it alike, another content does not."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return np.zeros((size, size), np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
    patch = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    patch -= patch.mean()
    return patch / (np.linalg.norm(patch) + 1e-6)


def _inside(box: np.ndarray, width: int, height: int) -> float:
    x1, y1, x2, y2 = box
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    iw = max(0.0, min(x2, width) - max(x1, 0))
    ih = max(0.0, min(y2, height) - max(y1, 0))
    return iw * ih / area


def carry(frames: Iterable[np.ndarray], box: np.ndarray, limit: int = CARRY_LIMIT,
          anchor: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None,
          make: Callable[[], cv2.Tracker] = cv2.TrackerMIL_create) -> list[np.ndarray]:
    """The box (``x1, y1, x2, y2`` in pixels of the first frame) in each of ``frames`` (``H x W x 3`` RGB, the
    first being the frame it was drawn on) for as long as the tracker holds it: ``[box, box in frame 1, ...]``,
    at most ``limit + 1`` boxes.

    ``anchor(image, box) -> box or None``: a detector's box for the object near where the tracker put it. MIL
    alone lost a face that turned while it crossed the frame (24 px a frame) after four frames; re-anchored on
    the face detector wherever it finds the face, it is carried to both ends of the clip."""
    box = np.asarray(box, dtype=np.float32)
    out: list[np.ndarray] = []
    tracker, reference = None, None

    def start(image: np.ndarray, bgr: np.ndarray, b: np.ndarray):
        t = make()
        x1, y1, x2, y2 = b
        t.init(bgr, (int(round(x1)), int(round(y1)), max(2, int(round(x2 - x1))), max(2, int(round(y2 - y1)))))
        return t, _grey_patch(image, b)

    for image in frames:
        h, w = image.shape[:2]
        bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
        if tracker is None:
            tracker, reference = start(image, bgr, box)
            out.append(box)
            continue
        if len(out) > limit:
            break
        ok, (x, y, bw, bh) = tracker.update(bgr)
        moved = np.array([x, y, x + bw, y + bh], dtype=np.float32)
        found = anchor(image, moved) if anchor is not None else None
        if found is not None:
            moved = np.asarray(found, dtype=np.float32)
            tracker, reference = start(image, bgr, moved)
        elif not ok or _inside(moved, w, h) < MIN_INSIDE or float((_grey_patch(image, moved) * reference).sum()) < MIN_LIKENESS:
            break
        out.append(moved)
    return out
