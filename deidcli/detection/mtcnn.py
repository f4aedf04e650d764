"""MTCNN from facenet-pytorch (weights inside the wheel), selectable with ``--detector mtcnn``."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deidcli.detections import Detections, box_iou
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

    def finds(self, image: np.ndarray, face: np.ndarray, min_iou: float = 0.3) -> bool:
        """Whether the full detector (all three stages, NMS, its threshold) returns a box overlapping ``face``."""
        dets = self.detect(image, 1.0)
        return bool(len(dets)) and bool((box_iou(dets.xyxy, face[None]) >= min_iou).any())

    def cascade_loss(self, x: torch.Tensor, face: torch.Tensor, margin: float = 0.1, min_iou: float = 0.3
                     ) -> torch.Tensor:
        """Face de-detection's loss (methods.md section 7): ``sum relu(score - threshold + margin)`` over every
        candidate of MTCNN's second and third stages (R-Net, O-Net) that overlaps a face by ``min_iou``.

        ``x: (B, 3, H, W)`` RGB in ``[0, 1]``, ``face: (B, 4)`` the face box in each image, or ``(B, N, 4)`` several
        (padding rows of zeros match nothing) -> ``(B,)``. The cascade
        is MTCNN's own (facenet-pytorch's ``detect_face``), run with gradients: which candidates reach a stage is
        decided on the current image, their scores are differentiable in it. A face the detector returns passed
        all three stages, so pushing every overlapping candidate below a later stage's threshold hides it. The first
        stage is left alone: P-Net fires all over a face and lowering it everywhere costs budget for nothing.
        """
        from facenet_pytorch.models.utils.detect_face import bbreg, generateBoundingBox, rerec
        from torchvision.ops import batched_nms
        from torchvision.ops import box_iou as iou

        m = self.model
        thr = m.thresholds
        imgs = x * 255
        b, _, h, w = imgs.shape
        faces = (face if face.dim() == 3 else face[:, None]).to(imgs)
        loss = imgs.new_zeros(b)
        boxes, inds = [], []
        scale, side = 12.0 / m.min_face_size, min(h, w) * 12.0 / m.min_face_size
        with torch.no_grad():  # stage 1 only chooses the candidates
            while side >= 12:
                size = (int(h * scale + 1), int(w * scale + 1))
                reg, probs = m.pnet((F.interpolate(imgs, size=size, mode="area") - 127.5) * 0.0078125)
                bb, ii = generateBoundingBox(reg, probs[:, 1], scale, thr[0])
                keep = batched_nms(bb[:, :4], bb[:, 4], ii, 0.5)
                boxes.append(bb[keep])
                inds.append(ii[keep])
                scale *= m.factor
                side *= m.factor
            boxes, inds = torch.cat(boxes), torch.cat(inds)
            keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
            boxes, inds = boxes[keep], inds[keep]
            bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            boxes = rerec(torch.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                                       boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh,
                                       boxes[:, 4]], 1))
        for stage, size in ((1, 24), (2, 48)):
            if not len(boxes):
                break
            data, keep = _stage_crops(imgs, boxes, inds, size)
            boxes, inds = boxes[keep], inds[keep]
            out = (m.rnet if stage == 1 else m.onet)(data)
            score = out[-1][:, 1]
            overlap = iou(boxes[:, :4], faces.reshape(-1, 4))  # (candidates, B * N)
            on_face = overlap.view(len(boxes), b, -1)[torch.arange(len(boxes)), inds].amax(1) >= min_iou
            loss = loss.index_add(0, inds[on_face], F.relu(score[on_face] - thr[stage] + margin))
            if stage == 1:  # R-Net's survivors, refined, become O-Net's candidates
                with torch.no_grad():
                    ok = score > thr[1]
                    boxes = torch.cat([boxes[ok, :4], score[ok, None]], 1)
                    inds, reg = inds[ok], out[0][ok]
                    keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
                    boxes, inds = rerec(bbreg(boxes[keep], reg[keep])), inds[keep]
        return loss


def _stage_crops(imgs: torch.Tensor, boxes: torch.Tensor, inds: torch.Tensor, size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """MTCNN's crops of candidate ``boxes`` (clipped as its ``pad`` does), resized to ``size`` and scaled for the
    next net, differentiable in ``imgs``; and which candidates had a non-empty crop."""
    h, w = imgs.shape[-2:]
    b = boxes[:, :4].detach().trunc().int().cpu().numpy()
    x0, y0 = np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1
    x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    keep = [k for k in range(len(b)) if y1[k] > y0[k] and x1[k] > x0[k]]
    data = [F.interpolate(imgs[inds[k], :, y0[k]:y1[k], x0[k]:x1[k]][None], size=(size, size), mode="area")
            for k in keep]
    if not data:
        return imgs.new_zeros((0, 3, size, size)), torch.zeros(0, dtype=torch.long)
    return (torch.cat(data) - 127.5) * 0.0078125, torch.tensor(keep, dtype=torch.long)
