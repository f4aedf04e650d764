"""Users' own YOLO models through Ultralytics (the yolo extra, AGPL-3.0): a hub name (downloaded on first use where
there is internet) or a local ``.pt`` / ``.onnx`` file, for bodies, vehicles or plates. deid's named plate models run
without it (deidcli/detection/plates.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from deidcli.detections import Detections
from deidcli.errors import ModelUnavailableError

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
