"""Per-frame work: detect faces, then anonymize every detected region. Nothing is written without passing here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deidcli.config import DeidConfig
from deidcli.detection import FaceDetector, build_detector, inference_scale
from deidcli.detection.tiling import TiledDetector
from deidcli.detections import Detections
from deidcli.errors import ConfigError
from deidcli.methods import get_method
from deidcli.methods.regions import RegionStyle, anonymize_frame


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA GPU")
    return torch.device(device)


@dataclass
class FrameAnonymizer:
    detector: FaceDetector
    style: RegionStyle
    scale: str | float
    max_side: int
    device: torch.device

    @classmethod
    def from_config(cls, cfg: DeidConfig) -> "FrameAnonymizer":
        device = resolve_device(cfg.device)
        style = RegionStyle(
            method=get_method(cfg.method),
            strength=cfg.strength,
            mask_shape=cfg.mask_shape,
            mask_scale=cfg.mask_scale,
            color=cfg.color,
            seed=cfg.seed,
        )
        detector = build_detector(cfg.detector, cfg.threshold, device.type)
        if cfg.tile != "off":
            detector = TiledDetector(detector, cfg.tile, cfg.max_side, cfg.tile_scale)
        return cls(detector, style, cfg.scale, cfg.max_side, device)

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in ``image`` (H x W x 3 uint8 RGB), in its pixel coordinates."""
        h, w = image.shape[:2]
        return self.detector.detect(image, inference_scale(w, h, self.scale, self.max_side))

    def anonymize(self, image: np.ndarray, dets: Detections, index: int = 0) -> np.ndarray:
        """A copy of ``image`` with every region in ``dets`` anonymized."""
        return anonymize_frame(image, dets, self.style, index, self.device)

    def __call__(self, image: np.ndarray, index: int = 0) -> tuple[np.ndarray, Detections]:
        """Detect and anonymize one image on its own (no tracking): the anonymized copy and what was found."""
        dets = self.detect(image)
        return self.anonymize(image, dets, index), dets
