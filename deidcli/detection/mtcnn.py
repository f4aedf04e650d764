"""MTCNN from facenet-pytorch (weights inside the wheel), selectable with ``--detector mtcnn``."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deidcli.detections import Detections
from deidcli.errors import ModelUnavailableError


class MTCNNDetector:
    name = "mtcnn"
    default_threshold = 0.7

    def __init__(self, threshold: float | None = None, device: str = "cpu", min_face_size: int = 12):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise ModelUnavailableError(
                f"MTCNN needs facenet-pytorch (pip install --no-deps facenet-pytorch): {exc}"
            ) from None
        self.threshold = self.default_threshold if threshold is None else threshold
        self.model = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        h, w = image.shape[:2]
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes, probs, points = self.model.detect(image, landmarks=True)
        if boxes is None:
            return Detections.empty()
        keep = probs >= self.threshold
        dets = Detections(boxes[keep], probs[keep], np.zeros(int(keep.sum())), points[keep])
        return dets.scaled(w / image.shape[1], h / image.shape[0])

    def proposal_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable face probabilities of MTCNN's first stage (P-Net) at every position of its image pyramid:
        ``x: (B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, N)``. Where none reaches P-Net's threshold (0.6), MTCNN
        proposes nothing and cannot find a face: what face de-detection drives down."""
        im = (x * 255 - 127.5) * 0.0078125  # facenet-pytorch's P-Net input scaling
        h, w = x.shape[-2:]
        m = 12.0 / self.model.min_face_size
        scale, side = m, min(h, w) * m
        out = []
        while side >= 12:
            size = (int(h * scale + 1), int(w * scale + 1))
            _, probs = self.model.pnet(F.interpolate(im, size=size, mode="area"))
            out.append(probs[:, 1].flatten(1))
            scale *= self.model.factor
            side *= self.model.factor
        return torch.cat(out, 1)
