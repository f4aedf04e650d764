"""MTCNN (Zhang et al. 2016): the three nets and their cascade, in torch.

Written for this project so MTCNN needs no facenet-pytorch (which pins torch < 2.3 and cannot be installed beside
deid): the nets' layer names follow facenet-pytorch's so its published weights (MIT), shipped inside deid as
``data/mtcnn_{pnet,rnet,onet}.pt`` (:data:`MTCNN_WEIGHTS`, byte for byte its wheel's, 1.9 MB), load as they are, and
the cascade gives the same boxes (tested against facenet-pytorch where it is installed).

Images are ``(B, 3, H, W)`` float RGB in ``[0, 255]``; boxes ``(N, 5)`` ``x0, y0, x1, y1, score`` in pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from deidcli.weights import ShippedWeights, shipped_file

_FACENET_PYTORCH = ("https://files.pythonhosted.org/packages/ed/2e/2d56386bc2f834cdc683743903852cf1428b4e5ee119f16c"
                    "f808b589d3cd/facenet_pytorch-2.6.0-py3-none-any.whl")  # SHA-256 ecb82b27beb226d1...
MTCNN_WEIGHTS = tuple(
    ShippedWeights(label=f"MTCNN {net} (facenet-pytorch 2.6.0, MIT)", resource=f"detection/data/mtcnn_{net.lower()}.pt",
                   sha256=sha256, source=f"facenet_pytorch/data/{net.lower()}.pt in {_FACENET_PYTORCH}")
    for net, sha256 in (("PNet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
                        ("RNet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
                        ("ONet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"))
)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


class PNet(nn.Module):
    """Proposal net: a 12 x 12 window's face score and box offsets, densely over the image (stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` normalized -> box offsets ``(B, 4, h, w)``, probabilities ``(B, 2, h, w)``."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement net on 24 x 24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, 24, 24)`` -> offsets ``(N, 4)``, probabilities ``(N, 2)``."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(len(x), -1)))  # the original's (W, H, C) order
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48 x 48 crops: score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(N, 3, 48, 48)`` -> offsets ``(N, 4)``, landmarks ``(N, 10)`` (x then y, in the crop, 0-1),
        probabilities ``(N, 2)``."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(len(x), -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def load_nets(device: str = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three nets with facenet-pytorch's published weights, in eval mode (the files inside deid, checked)."""
    nets = (PNet(), RNet(), ONet())
    for net, spec in zip(nets, MTCNN_WEIGHTS):
        path = shipped_file(spec, "mtcnn")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net.to(device).eval()
    return nets


def window_boxes(reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """P-Net's windows scoring ``>= threshold`` as ``(K, 9)`` boxes in image pixels (``x0 y0 x1 y1 score`` and the
    four offsets), with the image index of each ``(K,)``. ``reg: (B, 4, h, w)``, ``probs: (B, h, w)``."""
    mask = probs >= threshold
    where = mask.nonzero()
    offsets = reg.permute(1, 0, 2, 3)[:, mask].permute(1, 0)
    cell = where[:, 1:].to(reg.dtype).flip(1)  # (x, y) of the window on P-Net's grid
    top_left = ((2 * cell + 1) / scale).floor()
    bottom_right = ((2 * cell + 12) / scale).floor()
    return torch.cat([top_left, bottom_right, probs[mask].unsqueeze(1), offsets], dim=1), where[:, 0]


def apply_offsets(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Boxes ``(N, >=4)`` moved by a net's offsets ``(N, 4)``, in units of the box's (inclusive) size."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.clone()
    out[:, :4] = boxes[:, :4] + reg[:, :4] * torch.stack([w, h, w, h], dim=1)
    return out


def square(boxes: torch.Tensor) -> torch.Tensor:
    """The square on each box's longer side, same centre."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def stage_crops(imgs: torch.Tensor, boxes: torch.Tensor, inds: torch.Tensor, size: int, windowed: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of ``boxes`` (truncated to whole pixels and clipped to the image, as the original does), resized to
    ``size`` with area averaging and normalized for the next net (differentiable in ``imgs``); and which boxes
    had a non-empty crop.

    ``windowed``: the same crops, cut from one window of ``imgs`` around all of them. Autograd gives every slice of
    a tensor a gradient the size of that tensor: for a few crops near a face in a large frame, slicing them from
    the window instead of the frame made face de-detection's backward pass many times cheaper."""
    h, w = imgs.shape[-2:]
    b = boxes[:, :4].detach().trunc().int().cpu().numpy()
    x0, y0 = np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1
    x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    keep = [k for k in range(len(b)) if y1[k] > y0[k] and x1[k] > x0[k]]
    wx, wy = 0, 0
    if windowed and keep:
        wx, wy = int(x0[keep].min()), int(y0[keep].min())
        imgs = imgs[..., wy:int(y1[keep].max()), wx:int(x1[keep].max())]
    data = [F.interpolate(imgs[inds[k], :, y0[k] - wy:y1[k] - wy, x0[k] - wx:x1[k] - wx][None], size=(size, size),
                          mode="area")
            for k in keep]
    if not data:
        return imgs.new_zeros((0, 3, size, size)), torch.zeros(0, dtype=torch.long)
    return _normalize(torch.cat(data)), torch.tensor(keep, dtype=torch.long)


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, inds: torch.Tensor, threshold: float) -> torch.Tensor:
    """Non-maximum suppression per image where overlap is intersection over the smaller box (O-Net's final
    step: a box inside a larger, better one goes). Indices kept, best first."""
    if not len(boxes):
        return torch.zeros(0, dtype=torch.long)
    b = (boxes + (inds.to(boxes) * (boxes.max() + 1))[:, None]).cpu().numpy().astype(np.float64)
    s = scores.cpu().numpy()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    order = np.argsort(s, kind="stable")
    keep = []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
        ih = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
        order = rest[iw * ih / np.minimum(area[i], area[rest]) <= threshold]
    return torch.as_tensor(keep, dtype=torch.long)


def proposals(pnet: PNet, imgs: torch.Tensor, min_face_size: float, threshold: float, factor: float,
              min_window: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1 over the image pyramid: squared candidate boxes ``(K, 5)`` and their image indices ``(K,)``.

    ``min_window``: skip the finest levels, where P-Net's 12 px window covers fewer image pixels than this (it
    looks for faces smaller than that; the finest levels are most of the cost)."""
    h, w = imgs.shape[-2:]
    scale, side = 12.0 / min_face_size, min(h, w) * 12.0 / min_face_size
    while 12.0 / scale < min_window and side * factor >= 12:
        scale *= factor
        side *= factor
    boxes, inds = [], []
    while side >= 12:
        reg, probs = pnet(_normalize(F.interpolate(imgs, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")))
        bb, ii = window_boxes(reg, probs[:, 1], scale, threshold)
        keep = batched_nms(bb[:, :4], bb[:, 4], ii, 0.5)
        boxes.append(bb[keep])
        inds.append(ii[keep])
        scale *= factor
        side *= factor
    boxes, inds = torch.cat(boxes), torch.cat(inds)
    keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds = boxes[keep], inds[keep]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    moved = torch.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                         boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh, boxes[:, 4]], 1)
    return square(moved), inds


def detect_faces(nets: tuple[PNet, RNet, ONet], imgs: torch.Tensor, min_face_size: float = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 min_window: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The whole cascade on ``imgs: (B, 3, H, W)`` float RGB in ``[0, 255]``: per image, boxes ``(N, 5)`` and
    landmarks ``(N, 5, 2)`` in pixels. ``min_window``: as :func:`proposals` (0: the full pyramid)."""
    pnet, rnet, onet = nets
    b = len(imgs)
    with torch.no_grad():
        boxes, inds = proposals(pnet, imgs, min_face_size, thresholds[0], factor, min_window)
        points = imgs.new_zeros((0, 5, 2))
        if len(boxes):  # stage 2
            data, keep = stage_crops(imgs, boxes, inds, 24)
            boxes, inds = boxes[keep], inds[keep]
            reg, probs = rnet(data) if len(data) else (data.new_zeros((0, 4)), data.new_zeros((0, 2)))
            ok = probs[:, 1] > thresholds[1]
            boxes, inds, reg = torch.cat([boxes[ok, :4], probs[ok, 1:2]], 1), inds[ok], reg[ok]
            keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
            boxes, inds = square(apply_offsets(boxes[keep], reg[keep])), inds[keep]
        if len(boxes):  # stage 3
            data, keep = stage_crops(imgs, boxes, inds, 48)
            boxes, inds = boxes[keep], inds[keep]
            reg, marks, probs = onet(data)
            ok = probs[:, 1] > thresholds[2]
            boxes, inds, reg, marks = torch.cat([boxes[ok, :4], probs[ok, 1:2]], 1), inds[ok], reg[ok], marks[ok]
            w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
            h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
            points = torch.stack([w * marks[:, :5] + boxes[:, :1] - 1, h * marks[:, 5:] + boxes[:, 1:2] - 1], dim=2)
            boxes = apply_offsets(boxes, reg)
            keep = nms_min(boxes[:, :4], boxes[:, 4], inds, 0.7)
            boxes, inds, points = boxes[keep], inds[keep], points[keep]
    boxes, points, inds = boxes.cpu().numpy(), points.cpu().numpy(), inds.cpu().numpy()
    return [(boxes[inds == i], points[inds == i]) for i in range(b)]
