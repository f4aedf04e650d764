"""Inception-ResNet-v1 (Szegedy et al. 2017) as FaceNet uses it: 160 x 160 RGB face crops -> 512-d unit vectors.

Written for this project so FaceNet needs no facenet-pytorch (which pins torch < 2.3). Module names follow
facenet-pytorch's ``InceptionResnetV1`` (``conv2d_1a`` ... ``repeat_1.0.branch1.1.conv`` ... ``last_bn``), so its
state dicts, and the CASIA-WebFace model converted by :mod:`deidcli.recognition.facenet_convert`, load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (TensorFlow's eps 0.001) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(*convs: BasicConv2d) -> nn.Module:
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class _Branches(nn.Module):
    """Parallel branches (``branch0``, ``branch1``, ...), concatenated along channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.n = len(branches)
        for i, b in enumerate(branches):
            self.add_module(f"branch{i}", b)

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branches(x)


class _Residual(_Branches):
    """Inception branches projected back by a 1x1 conv (``conv2d``) and added, scaled, to the input."""

    def __init__(self, channels: int, scale: float, relu: bool, *branches: nn.Module) -> None:
        super().__init__(*branches)
        widths = sum(_out_channels(b) for b in branches)
        self.conv2d = nn.Conv2d(widths, channels, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(self.branches(x)) * self.scale + x
        return F.relu(out) if self.relu else out


def _out_channels(branch: nn.Module) -> int:
    last = branch[-1] if isinstance(branch, nn.Sequential) else branch
    return last.conv.out_channels


def _block35(scale: float = 0.17) -> _Residual:
    c = BasicConv2d
    return _Residual(256, scale, True, c(256, 32, 1), _chain(c(256, 32, 1), c(32, 32, 3, padding=1)),
                     _chain(c(256, 32, 1), c(32, 32, 3, padding=1), c(32, 32, 3, padding=1)))


def _block17(scale: float = 0.10) -> _Residual:
    c = BasicConv2d
    return _Residual(896, scale, True, c(896, 128, 1),
                     _chain(c(896, 128, 1), c(128, 128, (1, 7), padding=(0, 3)), c(128, 128, (7, 1), padding=(3, 0))))


def _block8(scale: float = 0.20, relu: bool = True) -> _Residual:
    c = BasicConv2d
    return _Residual(1792, scale, relu, c(1792, 192, 1),
                     _chain(c(1792, 192, 1), c(192, 192, (1, 3), padding=(0, 1)), c(192, 192, (3, 1), padding=(1, 0))))


class InceptionResnetV1(nn.Module):
    """``(B, 3, 160, 160)`` standardized RGB (``(x*255 - 127.5) / 128``) -> ``(B, 512)`` L2-normalised embeddings."""

    def __init__(self) -> None:
        super().__init__()
        c = BasicConv2d
        self.conv2d_1a = c(3, 32, 3, stride=2)
        self.conv2d_2a = c(32, 32, 3)
        self.conv2d_2b = c(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = c(64, 80, 1)
        self.conv2d_4a = c(80, 192, 3)
        self.conv2d_4b = c(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*[_block35() for _ in range(5)])
        self.mixed_6a = _Branches(c(256, 384, 3, stride=2),
                                  _chain(c(256, 192, 1), c(192, 192, 3, padding=1), c(192, 256, 3, stride=2)),
                                  nn.MaxPool2d(3, stride=2))
        self.repeat_2 = nn.Sequential(*[_block17() for _ in range(10)])
        self.mixed_7a = _Branches(_chain(c(896, 256, 1), c(256, 384, 3, stride=2)),
                                  _chain(c(896, 256, 1), c(256, 256, 3, stride=2)),
                                  _chain(c(896, 256, 1), c(256, 256, 3, padding=1), c(256, 256, 3, stride=2)),
                                  nn.MaxPool2d(3, stride=2))
        self.repeat_3 = nn.Sequential(*[_block8() for _ in range(5)])
        self.block8 = _block8(scale=1.0, relu=False)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                      self.conv2d_4a, self.conv2d_4b, self.repeat_1, self.mixed_6a, self.repeat_2, self.mixed_7a,
                      self.repeat_3, self.block8):
            x = stage(x)
        x = self.last_bn(self.last_linear(x.mean(dim=(2, 3))))  # dropout is the identity in eval mode
        return F.normalize(x, p=2, dim=1)
