"""Bodies and vehicles through YOLOX-nano (COCO, 80 classes) on onnxruntime, from a file inside deid's own wheel:
nothing to fetch, so ``--targets body,vehicle`` work after an offline ``pip install deidcli``.

The graph is Megvii's YOLOX-nano (Apache-2.0, github.com/Megvii-BaseDetection/YOLOX, the 0.1.1rc0 weights) as
exported to ONNX by Kazuhito00/YOLOX-ONNX-TFLite-Sample (Apache-2.0; ``data/yolox_nano.LICENSE``), pinned by its
SHA-256. It takes a BGR picture, 0-255, not normalised (measured at 416 px: BGR found 22 of the 24 ground persons
of shared/data/persons at 0.15, RGB 21, ImageNet-normalised RGB none), exported for 416 x 416 and run at any
multiple of 32 (:func:`any_size`), and gives raw head outputs that :func:`decode` turns into boxes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deidcli.detection.coco_torchvision import COCO_CATEGORIES, label_ids
from deidcli.detection.onnx_session import cached_graph, ort_session
from deidcli.detections import Detections, nms
from deidcli.weights import ShippedWeights, shipped_file

YOLOX_MODELS: dict[str, ShippedWeights] = {
    # COCO box mAP 25.8 at 416 px, 1.08 GFLOPs (Megvii's table); 3.66 MB
    "yolox-nano": ShippedWeights(
        label="YOLOX-nano (COCO, Apache-2.0)",
        resource="detection/data/yolox_nano.onnx",
        sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        source="https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/blob/"
               "3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx",
    ),
}

# YOLOX's 80 COCO classes, in its order: torchvision's 91 ids less the background and the unused ids.
COCO80 = tuple(name for name in COCO_CATEGORIES[1:] if name != "N/A")
STRIDES = (8, 16, 32)
PAD = 114  # the grey YOLOX pads its letterbox with in training
NMS_IOU = 0.45  # YOLOX's own demo value
# Chosen on half the labelled pictures (bench/coco_recall.py): the highest with that half's best recall (all 14
# persons, 9 of 15 vehicles); no body on the 29 frames without people (0.05 gave 4, and 6 stray vehicle boxes).
YOLOX_THRESHOLD = 0.1


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """``image`` (``H x W x 3`` uint8 RGB) as the network's input ``(1, 3, h, w)`` float32 BGR 0-255: shrunk or
    enlarged to fit ``size = (h, w)`` with its aspect kept, padded right and below; and the factor it was scaled by."""
    h_in, w_in = size
    h, w = image.shape[:2]
    ratio = min(h_in / h, w_in / w)
    nh, nw = max(1, int(h * ratio)), max(1, int(w * ratio))
    padded = np.full((h_in, w_in, 3), PAD, np.uint8)
    padded[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    return padded.transpose(2, 0, 1)[None].astype(np.float32), ratio


def anchor_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each output row's cell ``(A, 2)`` (x, y in cells) and stride ``(A, 1)``, strides 8, 16, 32 in YOLOX's
    order: A = 3549 at 416 x 416."""
    cells, strides = [], []
    for s in STRIDES:
        ys, xs = np.mgrid[: size[0] // s, : size[1] // s]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((xs.size, 1), s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode(raw: np.ndarray, cells: np.ndarray, strides: np.ndarray, ratio: float, width: int, height: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(A, 4)`` xyxy in the image's pixels (clipped to ``width x height``) and class scores ``(A, 80)``
    (objectness x class probability) from one picture's raw output ``(A, 85)``: centre offsets in cells, log
    sizes in strides, objectness, 80 class probabilities (the graph ends before YOLOX's decoding)."""
    xy = (raw[:, :2] + cells) * strides
    half = np.exp(raw[:, 2:4]) * strides / 2
    boxes = np.concatenate([xy - half, xy + half], axis=1) / ratio
    np.clip(boxes, 0, [width, height, width, height], out=boxes)
    return boxes, raw[:, 4:5] * raw[:, 5:]


def any_size(path: Path) -> bytes:
    """The shipped graph with any picture size accepted (it was exported for 416 x 416 only; the network is fully
    convolutional and its reshapes infer the anchor count). Same outputs at 416 x 416 (tests/test_yolox.py)."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    del model.graph.value_info[:]  # the exporter's intermediate shapes, all for 416 x 416
    return update_inputs_outputs_dims(model, {"images": [1, 3, "H", "W"]}, {"output": [1, "A", 85]}).SerializeToString()


def input_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` the network sees a ``width x height`` picture at: its longer side at ``max_side``, both sides
    rounded up to a multiple of 32 (the largest stride)."""
    r = max_side / max(width, height)
    return int(np.ceil(height * r / 32) * 32), int(np.ceil(width * r / 32) * 32)


class YoloxNet:
    """One YOLOX session, loaded once, whose last answer is kept: bodies and vehicles take one pass a frame.

    A picture is letterboxed to ``max_side`` on its longer side, as YOLO models run at ``imgsz`` (the 416 px the
    graph was exported for lost half the cars of highway_1080p: 8 of 20 at 0.15 against 16 at 960;
    bench/coco_recall.py)."""

    def __init__(self, model: str = "yolox-nano", flag: str = "--body-model", device: str = "cpu",
                 max_side: int = 960) -> None:
        spec = YOLOX_MODELS[model]
        path = shipped_file(spec, f"{flag} {model}")
        self.session = ort_session(cached_graph(path, any_size, spec.sha256), device)
        self.input_name = self.session.get_inputs()[0].name
        self.max_side = max_side
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._last: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`decode`'s boxes ``(A, 4)`` and scores ``(A, 80)`` for ``image`` (``H x W x 3`` uint8 RGB)."""
        if self._last is not None and self._last[0] is image:  # the kept reference: the same frame, not a new one
            return self._last[1]
        h, w = image.shape[:2]
        size = input_size(w, h, self.max_side)
        if size not in self._grids:
            self._grids[size] = anchor_grid(size)
        blob, ratio = letterbox(image, size)
        raw = self.session.run(None, {self.input_name: blob})[0][0]
        out = decode(raw, *self._grids[size], ratio, w, h)
        self._last = (image, out)
        return out


class YoloxDetector:
    """The ``wanted`` COCO classes (persons, or cars, motorcycles, buses and trucks) from YOLOX, all as one target.
    ``net``: a :class:`YoloxNet` another target already loaded."""

    def __init__(self, model: str = "yolox-nano", flag: str = "--body-model", threshold: float = YOLOX_THRESHOLD,
                 device: str = "cpu", wanted: tuple[str, ...] = ("person",), net: YoloxNet | None = None,
                 max_side: int = 960) -> None:
        self.net = net if net is not None else YoloxNet(model, flag, device, max_side)
        self.name = model
        self.default_threshold = threshold
        self.threshold = threshold
        self.labels = label_ids(wanted, COCO80)

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        """Boxes of ``image`` (``H x W x 3`` uint8 RGB) in its pixels. ``scale`` is not used: the network sees every
        picture at the net's ``max_side`` (frames over twice that are also cut into tiles, deidcli/anonymizer.py)."""
        boxes, scores = self.net(image)
        # One score per box, its best wanted class: a van scored as both car and truck is one vehicle, one box.
        best = scores[:, self.labels].max(axis=1)
        keep = np.nonzero(best >= self.threshold)[0]
        boxes, best = boxes[keep], best[keep]
        kept = nms(boxes, best, NMS_IOU)
        return Detections(boxes[kept], best[kept], np.zeros(len(kept)))
