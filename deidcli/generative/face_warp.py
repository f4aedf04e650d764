"""Put a face into the decoder's 64 x 64 framing and back: one similarity transform per face.

The transform maps the decoder's canonical square onto the region crop, from the detector's box (the box's centre
and height, with where the decoder draws a face in its square) or, when the detector gave them, from the five
landmarks (a least-squares similarity, so a tilted face is straightened for the decoder and the generated face is
tilted back). Everything is ``grid_sample`` on batched tensors, so a batch of faces warps in one call on any device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deidcli.generative.synthetic import BOX_CENTRE_Y, BOX_HEIGHT, LANDMARKS, SIZE

# The part of the decoder's square that is face (brow to chin, cheek to cheek): replaced, feathered at its edge.
FACE_AXES = (0.36, 0.45)  # ellipse half-axes, in square sides
FACE_CENTRE = (0.5, 0.56)
FACE_FEATHER = 0.25  # of the radius


def box_transform(boxes: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 3)``: canonical square coordinates in ``[0, 1]`` -> pixel coordinates, from ``(B, 4)`` xyxy boxes."""
    boxes = boxes.to(torch.float32)
    h = (boxes[:, 3] - boxes[:, 1]).clamp_min(1)
    side = h / BOX_HEIGHT
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    t = torch.zeros((len(boxes), 2, 3), dtype=torch.float32, device=boxes.device)
    t[:, 0, 0] = side
    t[:, 1, 1] = side
    t[:, 0, 2] = cx - side * 0.5
    t[:, 1, 2] = cy - side * BOX_CENTRE_Y
    return t


def landmark_transform(landmarks: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 2, 3)`` least-squares similarity taking ``source`` landmarks (default: where the decoder draws them;
    ``(5, 2)`` or ``(B, 5, 2)`` in ``[0, 1]`` of the square) onto ``(B, 5, 2)`` pixel landmarks."""
    src = (LANDMARKS if source is None else source).to(landmarks)
    if src.dim() == 2:
        src = src.expand(len(landmarks), 5, 2)
    dst = landmarks.to(torch.float32)
    sm, dm = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - sm, dst - dm
    # similarity [[a, -b], [b, a]]: closed form of Umeyama for 2-D
    denom = (s ** 2).sum((1, 2))
    a = (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]).sum(1) / denom
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1) / denom
    t = torch.zeros((len(dst), 2, 3), dtype=torch.float32, device=dst.device)
    t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1] = a, -b, b, a
    t[:, :, 2] = dm[:, 0] - (t[:, :, :2] @ sm[:, 0, :, None])[..., 0]
    return t


def _grid(t: torch.Tensor, height: int, width: int, size: int, inverse: bool) -> torch.Tensor:
    """Sampling grid for ``grid_sample``. Forward: for each canonical pixel, where it lies in the crop. Inverse: for
    each crop pixel, where it lies in the canonical square. Both in ``grid_sample``'s ``[-1, 1]``."""
    n = len(t)
    if not inverse:
        u = (torch.arange(size, device=t.device, dtype=torch.float32) + 0.5) / size
        uu, vv = torch.meshgrid(u, u, indexing="xy")
        pts = torch.stack([uu, vv, torch.ones_like(uu)], -1).view(1, -1, 3)
        xy = pts @ t.transpose(1, 2)  # (B, size*size, 2) pixels
        gx, gy = xy[..., 0] / width * 2 - 1, xy[..., 1] / height * 2 - 1
        return torch.stack([gx, gy], -1).view(n, size, size, 2)
    a = t[:, :, :2]
    inv = torch.linalg.inv(a)
    ys = torch.arange(height, device=t.device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=t.device, dtype=torch.float32) + 0.5
    xx, yy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([xx, yy], -1).view(1, -1, 2) - t[:, None, :, 2]
    uv = pts @ inv.transpose(1, 2)  # (B, H*W, 2) in [0, 1]
    return (uv * 2 - 1).view(n, height, width, 2)


def to_canonical(crops: torch.Tensor, t: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, 3, size, size)``: each face as the decoder frames one. Faces much larger than the
    square are low-passed first, so the square is not aliased."""
    h, w = crops.shape[-2:]
    side = float(t[:, 0, 0].abs().max())
    src = crops
    if side > 2 * size:  # shrink first: grid_sample has no antialiasing
        f = 2 * size / side
        src = F.interpolate(crops, scale_factor=f, mode="bilinear", antialias=True)
        t = t.clone()
        t[:, :, :] *= f
        h, w = src.shape[-2:]
    grid = _grid(t, h, w, size, inverse=False)
    return F.grid_sample(src, grid.to(src.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def from_canonical(faces: torch.Tensor, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, C, size, size)`` in the canonical square -> ``(B, C, height, width)`` in the crop (zero outside)."""
    grid = _grid(t, height, width, faces.shape[-1], inverse=True)
    return F.grid_sample(faces, grid.to(faces.dtype), mode="bicubic", padding_mode="zeros", align_corners=False)


def face_mask(size: int = SIZE, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(1, 1, size, size)``: 1 on the face in the canonical square, fading to 0 at the ellipse's edge."""
    u = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    ys = (u - FACE_CENTRE[1]) / FACE_AXES[1]
    xs = (u - FACE_CENTRE[0]) / FACE_AXES[0]
    r = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return ((1 - r) / FACE_FEATHER).clamp(0, 1)[None, None]


def crop_transforms(height: int, width: int, inner: float, n: int, landmarks: torch.Tensor | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """The transforms of ``n`` region crops whose detector box is the central ``inner`` of the crop, or given by
    ``landmarks: (n, 5, 2)`` in crop pixels."""
    bh, bw = inner * height, inner * width
    box = torch.tensor([[(width - bw) / 2, (height - bh) / 2, (width + bw) / 2, (height + bh) / 2]],
                       dtype=torch.float32, device=device)
    t = box_transform(box).expand(n, 2, 3).contiguous()
    if landmarks is None:
        return t
    lt = landmark_transform(landmarks.to(device))
    # Landmarks of a small, blurred or carried-over face can be wild: trust them only where they agree with the box.
    side, lside = t[:, 0, 0], torch.linalg.det(lt[:, :, :2]).abs().sqrt()
    centre = lambda m: m[:, :, 2] + m[:, :, :2] @ torch.tensor([0.5, 0.5], device=m.device)  # noqa: E731
    ok = torch.isfinite(lt).all(2).all(1) & (lside > 0.75 * side) & (lside < 1.33 * side)
    ok &= (centre(lt) - centre(t)).norm(dim=1) < 0.2 * side
    ok &= lt[:, 0, 0] / lside > 0.8  # tilted by less than about 37 degrees
    return torch.where(ok[:, None, None], lt, t)


def cut_faces(image: np.ndarray, boxes: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """Faces at ``boxes: (N, 4)`` of an RGB uint8 image, framed as the decoder draws them: ``(N, 3, size, size)``."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    t = box_transform(torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)))
    return torch.cat([to_canonical(x, ti[None], size) for ti in t])


def find_landmarks(faces: torch.Tensor, detector) -> torch.Tensor:
    """The five landmarks of each canonical face ``(B, 3, S, S)``, by the face detector on it enlarged four times:
    ``(B, 5, 2)`` in ``[0, 1]`` of the square, NaN where it finds no face."""
    out = torch.full((len(faces), 5, 2), float("nan"))
    size = faces.shape[-1]
    big = F.interpolate(faces.float().cpu(), scale_factor=4, mode="bilinear", align_corners=False)
    pad = size  # room around the face: the detector wants some background
    big = F.pad(big, (pad, pad, pad, pad), mode="replicate")
    for i, img in enumerate((big.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()):
        found = detector.detect(np.ascontiguousarray(img), 1.0)
        if len(found) and found.landmarks is not None:
            j = int(np.argmax((found.xyxy[:, 2] - found.xyxy[:, 0]) * (found.xyxy[:, 3] - found.xyxy[:, 1])))
            out[i] = torch.from_numpy((found.landmarks[j] - pad) / (4 * size))
    return out


def to_square_points(points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Crop pixel points ``(B, K, 2)`` in the canonical square's ``[0, 1]`` coordinates of transforms ``t``."""
    return (points.to(t) - t[:, None, :, 2]) @ torch.linalg.inv(t[:, :, :2]).transpose(1, 2)


def square_landmarks(faces: torch.Tensor, detector, given: torch.Tensor | None = None) -> torch.Tensor:
    """The five landmarks of each canonical face ``(B, 3, S, S)`` in ``[0, 1]``: ``given`` (the frame detector's,
    already in the square) where they lie inside it, else found by ``detector`` on the face, else where the decoder
    draws them. ``(B, 5, 2)``; the detector runs only on faces without usable landmarks."""
    lm = torch.full((len(faces), 5, 2), float("nan"), device=faces.device)
    if given is not None:
        inside = ((given >= 0) & (given <= 1)).all(2).all(1) & torch.isfinite(given).all(2).all(1)
        lm[inside] = given[inside].to(lm)
    missing = ~torch.isfinite(lm).all(2).all(1)
    if missing.any():
        lm[missing] = find_landmarks(faces[missing], detector).to(lm)
    return torch.where(torch.isfinite(lm), lm, LANDMARKS.to(lm))
