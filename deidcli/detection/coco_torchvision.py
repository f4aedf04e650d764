"""Bodies and vehicles through torchvision's COCO detectors: BSD-licensed code and weights, so they work after a
plain ``pip install deidcli`` and keep the core free of AGPL (Ultralytics' YOLO stays in the ``yolo`` extra).

The weights are torchvision's own, fetched once from the PyTorch site on first use into deid's models cache and
pinned by their whole SHA-256 where it is known (frcnn-mobilenet), else by the prefix torchvision puts in each
file's name; a copy torchvision itself downloaded (``~/.cache/torch/hub/checkpoints``) is used as it is. The default
body and vehicle model is YOLOX-nano (deidcli/detection/yolox.py), which ships inside deid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deidcli.detections import Detections
from deidcli.errors import ModelUnavailableError
from deidcli.weights import FileWeights, weights_file


@dataclass(frozen=True)
class CocoModel:
    builder: str  # the torchvision.models.detection function
    weights: FileWeights


def _torchvision(name: str, stem: str, prefix: str, sha256: str | None = None) -> FileWeights:
    """``sha256``: the whole file's, where known (a download is checked against all of it); else the prefix."""
    return FileWeights(label=f"torchvision's {name} (COCO, BSD-3-Clause)",
                       url=f"https://download.pytorch.org/models/{stem}-{prefix}.pth", sha256=sha256 or prefix)


COCO_MODELS: dict[str, CocoModel] = {
    # COCO box mAP 32.8, 4.5 GFLOPs
    "frcnn-mobilenet": CocoModel(
        "fasterrcnn_mobilenet_v3_large_fpn",
        _torchvision("Faster R-CNN MobileNetV3-Large FPN", "fasterrcnn_mobilenet_v3_large_fpn", "fb6a3cc7",
                     "fb6a3cc702b1df54c18a44b26708cd083614211062d0c36d2ca7bf9270df3533")),  # 77,844,807 bytes
    # COCO box mAP 46.7, 280 GFLOPs: for small, distant people, at many times the cost
    "frcnn-resnet50": CocoModel(
        "fasterrcnn_resnet50_fpn_v2",
        _torchvision("Faster R-CNN ResNet-50 FPN v2", "fasterrcnn_resnet50_fpn_v2_coco", "dd69338a")),
}

# torchvision's COCO label ids (index into this list); the background is 0.
COCO_CATEGORIES = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop",
    "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


def label_ids(wanted: tuple[str, ...], categories: tuple[str, ...] = COCO_CATEGORIES) -> np.ndarray:
    """The label ids (indices into ``categories``: torchvision's by default) of the COCO class names ``wanted``."""
    ids = [i for i, name in enumerate(categories) if name in wanted]
    if len(ids) != len(set(wanted)):
        raise ValueError(f"not COCO classes: {sorted(set(wanted) - set(categories))}")
    return np.array(ids)


def _torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


class CocoNet:
    """One torchvision detector, loaded once, whose last answer is kept: bodies and vehicles from the same model
    take one forward pass a frame, not two."""

    def __init__(self, model: str, flag: str, device: str = "cpu", spec: CocoModel | None = None) -> None:
        import torchvision.models.detection as tvd

        spec = spec or COCO_MODELS[model]
        path = weights_file(spec.weights, f"{flag} {model}", (_torch_hub_checkpoints(),))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which and stop
            raise ModelUnavailableError(f"{flag} {model}: {path} is not a torchvision checkpoint "
                                        f"({type(exc).__name__}); delete it") from None
        # No weights from the builder: it would fetch its own (the backbone's ImageNet ones too). Scores are
        # filtered per target, so the net keeps everything a target could ask for.
        net = getattr(tvd, spec.builder)(weights=None, weights_backbone=None, num_classes=len(COCO_CATEGORIES),
                                         box_score_thresh=0.05)
        net.load_state_dict(state)
        self.net, self.device = net.to(device).eval(), device
        self._last: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``boxes (N, 4)``, ``scores (N,)``, ``labels (N,)`` for ``image`` (``H x W x 3`` uint8 RGB; the network
        resizes it itself, shorter side 800 px)."""
        if self._last is not None and self._last[0] is image:  # the kept reference: the same frame, not a new one
            return self._last[1]
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).float().div_(255)
        with torch.no_grad():
            out = {k: v.cpu().numpy() for k, v in self.net([x])[0].items()}
        self._last = (image, out)
        return out


class TorchvisionDetector:
    """The ``wanted`` COCO classes (persons, or cars, motorcycles, buses and trucks) from a torchvision detector,
    all as one target. ``net``: a :class:`CocoNet` another target already loaded."""

    def __init__(self, model: str, flag: str, threshold: float = 0.3, device: str = "cpu",
                 wanted: tuple[str, ...] = ("person",), spec: CocoModel | None = None, net: CocoNet | None = None
                 ) -> None:
        self.net = net if net is not None else CocoNet(model, flag, device, spec)
        self.name = model
        self.default_threshold = threshold
        self.threshold = threshold
        self.labels = label_ids(wanted)

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        out = self.net(image)
        keep = np.isin(out["labels"], self.labels) & (out["scores"] >= self.threshold)
        return Detections(out["boxes"][keep], out["scores"][keep], np.zeros(int(keep.sum())))
