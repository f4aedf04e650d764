"""MTCNN as a deid face detector (``--detector mtcnn``, the audit's second opinion) and the differentiable cascade
that face de-detection attacks; the nets are ``deidcli.detection.mtcnn_nets``."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deidcli.detections import Detections, box_iou
from deidcli.detection.mtcnn_nets import apply_offsets, detect_faces, load_nets, proposals, square, stage_crops


PRUNE = 0.1  # de-detection's loss skips P-Net windows smaller than this share of the smallest face's side


class MTCNNDetector:
    name = "mtcnn"
    default_threshold = 0.7
    thresholds = (0.6, 0.7, 0.7)  # each stage's own; ``threshold`` filters what the last one returns
    factor = 0.709  # image pyramid step

    def __init__(self, threshold: float | None = None, device: str = "cpu", min_face_size: int = 12):
        self.threshold = self.default_threshold if threshold is None else threshold
        self.min_face_size = min_face_size
        self.device = device
        self.pnet, self.rnet, self.onet = load_nets(device)

    def detect(self, image: np.ndarray, scale: float = 1.0, min_window: float = 0.0) -> Detections:
        """Faces in ``image``; ``min_window`` > 0 skips the pyramid's levels that look for faces smaller than that
        many pixels (:func:`~deidcli.detection.mtcnn_nets.proposals`): a quick look, not the detector."""
        h, w = image.shape[:2]
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        # a read-only frame (a decoded photo) is copied: torch warns on, and must not share, memory it cannot write
        x = torch.from_numpy(np.require(image, requirements=("C", "W"))).to(self.device).permute(2, 0, 1)[None].float()
        boxes, points = detect_faces((self.pnet, self.rnet, self.onet), x, self.min_face_size, self.thresholds,
                                     self.factor, min_window * scale)[0]
        keep = boxes[:, 4] >= self.threshold
        dets = Detections(boxes[keep, :4], boxes[keep, 4], np.zeros(int(keep.sum())), points[keep])
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
        is :func:`~deidcli.detection.mtcnn_nets.detect_faces`, run with gradients: which candidates reach a stage is
        decided on the current image, their scores are differentiable in it. A face the detector returns passed
        all three stages, so pushing every overlapping candidate below a later stage's threshold hides it. The first
        stage is left alone: P-Net fires all over a face and lowering it everywhere costs budget for nothing.
        """
        from torchvision.ops import batched_nms
        from torchvision.ops import box_iou as iou

        thr = self.thresholds
        imgs = x * 255
        b = len(imgs)
        faces = (face if face.dim() == 3 else face[:, None]).to(imgs)
        loss = imgs.new_zeros(b)
        real = faces.reshape(-1, 4)
        real = real[(real[:, 2] > real[:, 0]) & (real[:, 3] > real[:, 1])]
        # Windows under a tenth of the smallest face cannot grow into a candidate that overlaps it by min_iou.
        smallest = float(torch.minimum(real[:, 2] - real[:, 0], real[:, 3] - real[:, 1]).min()) if len(real) else 0.0
        with torch.no_grad():  # stage 1 only chooses the candidates
            boxes, inds = proposals(self.pnet, imgs, self.min_face_size, thr[0], self.factor, PRUNE * smallest)
        for stage, size in ((1, 24), (2, 48)):
            if not len(boxes):
                break
            net = self.rnet if stage == 1 else self.onet
            with torch.no_grad():  # which candidates go on is decided on all of them, as the detector does
                data, keep = stage_crops(imgs, boxes, inds, size)
                boxes, inds = boxes[keep], inds[keep]
                out = net(data)
                score = out[-1][:, 1]
            overlap = iou(boxes[:, :4], faces.reshape(-1, 4))  # (candidates, B * N)
            on_face = overlap.view(len(boxes), b, -1)[torch.arange(len(boxes)), inds].amax(1) >= min_iou
            if on_face.any():  # only the candidates on a face carry gradients: their crops cut from one window
                data, _ = stage_crops(imgs, boxes[on_face], inds[on_face], size, windowed=True)
                graded = net(data)[-1][:, 1]
                loss = loss.index_add(0, inds[on_face], F.relu(graded - thr[stage] + margin))
            if stage == 1:  # R-Net's survivors, refined, become O-Net's candidates
                with torch.no_grad():
                    ok = score > thr[1]
                    boxes = torch.cat([boxes[ok, :4], score[ok, None]], 1)
                    inds, reg = inds[ok], out[0][ok]
                    keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
                    boxes, inds = square(apply_offsets(boxes[keep], reg[keep])), inds[keep]
        return loss

