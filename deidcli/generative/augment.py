"""Batched augmentations that make synthetic training faces look like faces cut out of video.

All take and return ``(B, 3, H, W)`` in ``[0, 1]`` and draw from an explicit ``torch.Generator`` (training is
reproducible). Real crops differ from the DCGAN's renders by camera colour, framing error and, above all in drone
footage, resolution: a 20 px face upscaled to 64 is soft.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def colour_jitter(x: torch.Tensor, g: torch.Generator, amount: float = 1.0) -> torch.Tensor:
    """Per-image channel gains, brightness and saturation."""
    n = len(x)
    gains = 1 + amount * 0.15 * (2 * torch.rand((n, 3, 1, 1), generator=g) - 1)
    bright = amount * _uniform(n, -0.1, 0.1, g).view(n, 1, 1, 1)
    sat = 1 + amount * _uniform(n, -0.35, 0.25, g).view(n, 1, 1, 1)
    grey = x.mean(1, keepdim=True)
    y = grey + (x - grey) * sat
    return (y * gains.to(x) + bright.to(x)).clamp(0, 1)


def jitter_geometry(x: torch.Tensor, g: torch.Generator, shift: float = 0.06, scale: float = 0.08,
                    degrees: float = 8.0) -> torch.Tensor:
    """Random similarity transforms (a detector's box is never exactly where the decoder draws the face)."""
    n = len(x)
    a = torch.deg2rad(_uniform(n, -degrees, degrees, g))
    s = _uniform(n, 1 - scale, 1 + scale, g)
    t = _uniform(2 * n, -shift, shift, g).view(n, 2) * 2
    theta = torch.zeros((n, 2, 3))
    theta[:, 0, 0], theta[:, 0, 1] = s * torch.cos(a), -s * torch.sin(a)
    theta[:, 1, 0], theta[:, 1, 1] = s * torch.sin(a), s * torch.cos(a)
    theta[:, :, 2] = t
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def degrade(x: torch.Tensor, g: torch.Generator, smallest: int = 12) -> torch.Tensor:
    """Each image resampled through a random lower resolution (``smallest`` to full) and given a little noise."""
    out = torch.empty_like(x)
    h = x.shape[-1]
    sizes = torch.exp(_uniform(len(x), math.log(smallest), math.log(h), g)).round().int()
    for i, s in enumerate(sizes.tolist()):
        xi = x[i : i + 1]
        if s < h:
            xi = F.interpolate(F.interpolate(xi, size=(s, s), mode="bilinear", antialias=True), size=(h, h),
                               mode="bilinear", align_corners=False)
        out[i] = xi[0]
    noise = torch.randn(x.shape, generator=g).to(x) * _uniform(len(x), 0, 0.03, g).view(-1, 1, 1, 1).to(x)
    return (out + noise).clamp(0, 1)
