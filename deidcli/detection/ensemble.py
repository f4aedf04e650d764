"""Several detectors of one target as one: every box any of them finds, overlapping boxes merged.

For plates, where no single model both reads the flat test plates and the rotated plates at a fisheye's edge:
safelicensing finds 114/114 of shared/data/plates, platedet 10 of the fisheye clip's plates against safelicensing's 5
(``bench/fisheye_plates.py``); together, both.
"""

from __future__ import annotations

import numpy as np

from deidcli.detection.tiling import merge
from deidcli.detections import Detections


class EnsembleDetector:
    def __init__(self, detectors: list, iou: float = 0.3) -> None:
        self.detectors, self.iou = detectors, iou
        self.name = "+".join(d.name for d in detectors)
        self.default_threshold = detectors[0].default_threshold

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        return merge([d.detect(image, scale) for d in self.detectors], self.iou)
