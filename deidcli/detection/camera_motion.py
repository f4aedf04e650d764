"""The camera's motion as one image translation per frame: where a search for a small face must look.

A drone pans: between two frames whose tiles ran (half a second apart) every face on the ground moves by the same
tens or hundreds of pixels, far more than the face's own size, so a search around where it was finds nothing. The
shift between consecutive frames is measured by phase correlation (OpenCV) on grey pictures a few hundred pixels
wide (about 2 ms a 4K frame) and summed; a measurement OpenCV does not trust (a cut, a featureless sky) counts as no
motion, and the searches fall back to where the face was.
"""

from __future__ import annotations

import cv2
import numpy as np

MOTION_WIDTH = 480  # pixels across the grey picture the shift is measured on
MIN_RESPONSE = 0.05  # phase correlation's peak under this: no shift measured
KEEP = 1024  # offsets of this many frames back are kept (a keyframe interval is at most 60)


class CameraMotion:
    """Offsets ``(x, y)`` in pixels of each frame's picture from the first's, measured in order as the frames
    stream by (:meth:`measure`) and read back by frame (:meth:`offset`)."""

    def __init__(self) -> None:
        self._offsets: dict[int, np.ndarray] = {}
        self._prev: np.ndarray | None = None
        self._total = np.zeros(2)
        self._window: np.ndarray | None = None

    def offset(self, key: int) -> np.ndarray:
        return self._offsets[key]

    def measure(self, key: int, image: np.ndarray) -> None:
        """The offset of frame ``key`` (``H x W x 3``), from the frame measured before it."""
        h, w = image.shape[:2]
        f = max(1, w // MOTION_WIDTH)
        small = cv2.resize(image, (w // f, h // f), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if self._prev is not None and self._prev.shape == grey.shape:
            if self._window is None or self._window.shape != grey.shape[::-1]:
                self._window = cv2.createHanningWindow(grey.shape[::-1], cv2.CV_32F)
            (dx, dy), response = cv2.phaseCorrelate(self._prev, grey, self._window)
            if response >= MIN_RESPONSE:
                self._total = self._total + np.array([dx, dy]) * (w / grey.shape[1])
        self._prev = grey
        self._offsets[key] = self._total.copy()
        self._offsets.pop(key - KEEP, None)
