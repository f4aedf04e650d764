"""The networks deid trains for the frozen DCGAN decoder: a face encoder, and the conditioning encoder of ``gan``.

Both read 64 x 64 faces framed as the decoder draws them (:mod:`deidcli.generative.synthetic`). GroupNorm instead of
BatchNorm: real faces from video have other statistics than the synthetic faces the encoders learn on, and a
per-sample normalisation does not carry the training set's running means into inference.
"""

from __future__ import annotations

import torch
from torch import nn

from deidcli.generative.synthetic import Z_DIM


def _down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.GroupNorm(8, cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Encoder(nn.Module):
    """``(B, C, 64, 64)`` in ``[0, 1]`` -> ``(B, 100)`` codes of the DCGAN prior; ``C = 3`` for a face, more for a
    face with conditioning planes (landmark maps)."""

    def __init__(self, in_channels: int = 3, width: int = 48, z_dim: int = Z_DIM) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_down(in_channels, w, norm=False), *_down(w, 2 * w), *_down(2 * w, 4 * w), *_down(4 * w, 8 * w)
        )
        self.head = nn.Linear(8 * w * 16, z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2 - 1).flatten(1))


class TargetedEncoder(nn.Module):
    """The conditioned encoder of ``gan``: ``z = (1 - g) P([L(x), (1 - m) x, m]) + g t + Q(t) / 10``.

    ``planes``: ``(B, C, 64, 64)``: landmark heat maps, the image with the face masked out, and the mask; ``t``:
    ``(B, 100)`` the target identity's code; ``g`` a learned gate per code dimension (which dimensions the target
    decides). The face itself never enters, so nothing of its identity can come out (CIAGAN's design); the decoded
    code keeps the source's pose and surroundings and takes the rest from ``t``.
    """

    def __init__(self, in_channels: int, width: int = 48, z_dim: int = Z_DIM) -> None:
        super().__init__()
        self.pose = Encoder(in_channels, width, z_dim)
        self.identity = nn.Sequential(nn.Linear(z_dim, 2 * z_dim), nn.LeakyReLU(0.2), nn.Linear(2 * z_dim, z_dim))
        self.gate = nn.Parameter(torch.zeros(z_dim))  # per dimension: how much of the code the target decides

    def forward(self, planes: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate)
        return (1 - g) * self.pose(planes) + g * t + self.identity(t) * 0.1


class Critic(nn.Module):
    """A small discriminator for 64 x 64 faces (logits), used only in training."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            *_down(3, w, norm=False), *_down(w, 2 * w), *_down(2 * w, 4 * w), *_down(4 * w, 8 * w),
            nn.Conv2d(8 * w, 1, 4, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1).flatten(1).squeeze(1)
