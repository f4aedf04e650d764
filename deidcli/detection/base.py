"""What every face detector offers, and the inference-scale rule shared by all of them."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from deidcli.detections import Detections


class FaceDetector(Protocol):
    name: str
    default_threshold: float

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        """Faces in ``image`` (``H x W x 3`` uint8 RGB), run at ``scale`` times its size, boxes in image pixels."""
        ...


def inference_scale(width: int, height: int, scale: str | float, max_side: int) -> float:
    """The factor a frame is resized by before detection.

    ``"auto"`` shrinks frames whose longer side exceeds ``max_side`` and never enlarges; a number is used as given.
    """
    if scale == "auto":
        return min(1.0, max_side / max(width, height))
    return float(scale)
