"""Synthetic hair-like texture for the band around a generated face.

The band (hair, ears, the background next to the head) carries identity in its outline: kept as it was, dlib named
21% of people against a chance of 5%, and blurred at a quarter of deid's blur FaceNet still named 30% against 15%
(docs/methods.md). Blurred flat it protects but reads as a brown oval. So the band keeps the strong blur of its
colours and gets strands of noise drawn along circles around the face (hair falls down the sides and runs across the
crown), as strong as the original's own fine texture at each place seen through a wide blur: it reads as hair, and
no hairline, ear or glasses edge of the original survives. Batched tensors ``(B, C, H, W)`` in ``[0, 1]``; the noise is fixed (seed 0), so a tracked
head's band does not flicker.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deidcli.methods import naive

FINE_SIGMA = 1.5  # at 112 px: what is finer than this is the texture whose strength is measured
ENERGY_SIGMA = 8.0  # at 112 px: the strength map is blurred this much, so it draws no sharp outline
STRAND_LENGTH = 0.12  # of the crop's height, along the circle (sampled every pixel, so neighbours along it agree)
STRAND_GAIN = 0.75  # the strands add to what the blurred band keeps: at 1 the ring had 1.34x the original's texture


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def texture_strength(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, 1, H, W)``: the standard deviation of ``x``'s fine luminance texture, averaged over a wide window;
    ``scale`` is the crop's height over 112."""
    y = _luma(x)
    fine = y - naive.gaussian_blur(y, FINE_SIGMA * scale, clip=False)
    return naive.fast_gaussian_blur(fine ** 2, ENERGY_SIGMA * scale).clamp_min(0).sqrt()


def strands(height: int, width: int, centres: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, 1, H, W)`` unit-variance noise smeared along circles about ``centres: (B, 2)`` (crop pixels, x y): a
    line integral convolution of fixed white noise along the tangent of each circle."""
    b = len(centres)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn((1, 1, height, width), generator=g).to(device).expand(b, 1, height, width)
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    dx = xx[None] - centres[:, 0, None, None].to(device)
    dy = yy[None] - centres[:, 1, None, None].to(device)
    norm = torch.sqrt(dx ** 2 + dy ** 2).clamp_min(1e-3)
    tx, ty = -dy / norm, dx / norm  # the tangent: along the circle through each pixel
    taps = max(3, round(STRAND_LENGTH * height) | 1)
    total = torch.zeros((b, 1, height, width), device=device)
    for k in range(taps):
        o = k - (taps - 1) / 2
        gx = (xx[None] + o * tx) / width * 2 - 1
        gy = (yy[None] + o * ty) / height * 2 - 1
        total = total + F.grid_sample(noise, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="reflection",
                                      align_corners=False)
    total = total - total.mean((2, 3), keepdim=True)
    return total / total.std((2, 3), keepdim=True).clamp_min(1e-6)


def hair_band(x: torch.Tensor, blurred: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """The band of crops ``x: (B, 3, H, W)``: ``blurred`` (their colours without outline) with strands as strong
    as ``x``'s own texture nearby, drawn around ``centres: (B, 2)`` (the faces' centres in crop pixels)."""
    h, w = x.shape[-2:]
    scale = h / 112
    amount = texture_strength(x.float(), scale)
    return (blurred + STRAND_GAIN * amount * strands(h, w, centres, x.device)).clamp(0, 1)
