"""The YOLOv8 detection network, written from its published structure, run from weights with batch norm folded in.

Layers are rebuilt from a checkpoint's layer list (``[from, repeats, kind, args]`` per layer, as its ``yaml`` gives
them) and the shapes of its weights, so the n/s/m/l/x widths all load. Only what inference needs is here: a
convolution with its bias and SiLU (``Conv``), the split-and-stack block (``C2f``), fast spatial pyramid pooling
(``SPPF``), upsampling, concatenation and the anchor-free head (``Detect``, boxes as distributions over 16 bins).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Weights = dict[str, torch.Tensor]


class ConvAct(nn.Module):
    """Convolution (batch norm folded into its weights and bias) then SiLU; ``same`` padding."""

    def __init__(self, w: Weights, prefix: str, stride: int = 1) -> None:
        super().__init__()
        weight = w[f"{prefix}.weight"]
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], stride, weight.shape[2] // 2)
        self.conv.weight.data, self.conv.bias.data = weight.float(), w[f"{prefix}.bias"].float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv(x))


def _repeats(w: Weights, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in w if k.startswith(prefix)})


class C2f(nn.Module):
    """Split the input in two halves, run ``n`` bottlenecks on the second, stack every intermediate, fuse."""

    def __init__(self, w: Weights, prefix: str, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvAct(w, f"{prefix}.cv1"), ConvAct(w, f"{prefix}.cv2")
        self.m = nn.ModuleList(_Bottleneck(w, f"{prefix}.m.{j}", shortcut) for j in range(_repeats(w, f"{prefix}.m.")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class _Bottleneck(nn.Module):
    def __init__(self, w: Weights, prefix: str, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvAct(w, f"{prefix}.cv1"), ConvAct(w, f"{prefix}.cv2")
        self.add = shortcut and self.cv1.conv.in_channels == self.cv2.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class SPPF(nn.Module):
    """Three chained max-pools of one kernel, stacked with their input: pooling at 1, k, 2k-1 and 3k-2."""

    def __init__(self, w: Weights, prefix: str, k: int) -> None:
        super().__init__()
        self.cv1, self.cv2, self.k = ConvAct(w, f"{prefix}.cv1"), ConvAct(w, f"{prefix}.cv2"), k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(F.max_pool2d(y[-1], self.k, 1, self.k // 2) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    """Per level, a box branch (4 sides x ``bins`` logits) and a class branch; decoded to ``(B, 4 + classes, N)``:
    centre x, centre y, width, height in input pixels, then each class's probability."""

    def __init__(self, w: Weights, prefix: str, strides: list[float]) -> None:
        super().__init__()
        levels = range(len(strides))
        self.box = nn.ModuleList(self._branch(w, f"{prefix}.cv2.{i}") for i in levels)
        self.cls = nn.ModuleList(self._branch(w, f"{prefix}.cv3.{i}") for i in levels)
        self.strides = strides
        self.bins = self.box[0][-1].out_channels // 4

    @staticmethod
    def _branch(w: Weights, prefix: str) -> nn.Sequential:
        last = w[f"{prefix}.2.weight"]
        out = nn.Conv2d(last.shape[1], last.shape[0], 1)
        out.weight.data, out.bias.data = last.float(), w[f"{prefix}.2.bias"].float()
        return nn.Sequential(ConvAct(w, f"{prefix}.0"), ConvAct(w, f"{prefix}.1"), out)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        boxes, scores, anchors, strides = [], [], [], []
        for x, box, cls, s in zip(xs, self.box, self.cls, self.strides):
            b, _, h, wd = x.shape
            boxes.append(box(x).view(b, 4, self.bins, h * wd))
            scores.append(cls(x).flatten(2))
            ys, xs_ = torch.meshgrid(torch.arange(h, dtype=x.dtype) + 0.5, torch.arange(wd, dtype=x.dtype) + 0.5,
                                     indexing="ij")
            anchors.append(torch.stack((xs_.flatten(), ys.flatten())))
            strides.append(torch.full((h * wd,), s, dtype=x.dtype))
        probs = torch.cat(boxes, 3).softmax(2)  # each side's distance as a distribution over 0..bins-1 strides
        dist = (probs * torch.arange(self.bins, dtype=probs.dtype).view(1, 1, -1, 1)).sum(2)  # (B, 4, N)
        anchor, stride = torch.cat(anchors, 1), torch.cat(strides)
        lt, rb = anchor - dist[:, :2], anchor + dist[:, 2:]
        xywh = torch.cat(((lt + rb) / 2, rb - lt), 1) * stride
        return torch.cat((xywh, torch.cat(scores, 2).sigmoid()), 1)


class YoloV8(nn.Module):
    """The whole network: ``(B, 3, H, W)`` RGB in [0, 1], sides multiples of 32 -> ``(B, 4 + classes, N)``."""

    def __init__(self, layers: list[list[Any]], strides: list[float], w: Weights) -> None:
        super().__init__()
        self.sources = [f for f, _, _, _ in layers]
        mods = []
        for i, (_, _, kind, args) in enumerate(layers):
            p = f"model.{i}"
            if kind == "Conv":
                mods.append(ConvAct(w, p, args[2] if len(args) > 2 else 1))
            elif kind == "C2f":
                mods.append(C2f(w, p, bool(args[1]) if len(args) > 1 else False))
            elif kind == "SPPF":
                mods.append(SPPF(w, p, args[1] if len(args) > 1 else 5))
            elif kind in ("nn.Upsample", "Concat"):
                mods.append(nn.Identity())  # done in forward: no weights
            elif kind == "Detect":
                mods.append(Detect(w, p, strides))
            else:
                raise ValueError(f"layer {i}: {kind} is not a YOLOv8 detection layer")
        self.layers = nn.ModuleList(mods)
        self.kinds = [kind for _, _, kind, _ in layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for src, kind, layer in zip(self.sources, self.kinds, self.layers):
            inp = [outs[j] for j in src] if isinstance(src, list) else (x if src == -1 else outs[src])
            if kind == "nn.Upsample":
                x = F.interpolate(inp, scale_factor=2, mode="nearest")
            elif kind == "Concat":
                x = torch.cat(inp, 1)
            else:
                x = layer(inp)
            outs.append(x)
        return x


def fold_checkpoint(model: nn.Module) -> dict[str, Any]:
    """What :class:`YoloV8` needs from a loaded checkpoint's model (``deidcli.detection.checkpoint.load_foreign``):
    the layer list, strides, class names and every convolution with its batch norm folded in, as float16."""
    sd = model.state_dict()
    folded: Weights = {}
    for key in sd:
        if key.endswith(".conv.weight") and key.replace(".conv.weight", ".bn.weight") in sd:
            p = key[: -len(".conv.weight")]
            bn = {k: sd[f"{p}.bn.{k}"].double() for k in ("weight", "bias", "running_mean", "running_var")}
            eps = _bn_eps(model, p)
            scale = bn["weight"] / torch.sqrt(bn["running_var"] + eps)
            folded[f"{p}.weight"] = (sd[key].double() * scale.view(-1, 1, 1, 1)).half()
            folded[f"{p}.bias"] = (bn["bias"] - bn["running_mean"] * scale).half()
        elif ".cv2." in key or ".cv3." in key:
            if key.endswith((".2.weight", ".2.bias")):  # the head's last, plain convolutions
                folded[key] = sd[key].half()
    yaml = model.yaml
    layers = [list(x) for x in yaml["backbone"] + yaml["head"]]
    return {"layers": layers, "strides": [float(s) for s in model.stride],
            "names": {int(k): str(v) for k, v in model.names.items()}, "weights": folded}


def _bn_eps(model: nn.Module, prefix: str) -> float:
    module = model
    for part in prefix.split("."):
        module = getattr(module, "_modules")[part]
    return float(module._modules["bn"].eps)
