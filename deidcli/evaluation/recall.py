"""Detector recall against hand-labelled boxes (``boxes.csv``: image,x,y,w,h)."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deidcli.detection.base import FaceDetector
from deidcli.detections import box_iou


@dataclass
class RecallResult:
    found: int
    total: int
    detections: int
    seconds: float

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else float("nan")


def load_boxes(csv_path: Path) -> dict[str, np.ndarray]:
    """Ground-truth ``xyxy`` boxes per image file name."""
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            boxes[row["image"]].append([x, y, x + w, y + h])
    return {k: np.asarray(v, dtype=np.float32) for k, v in boxes.items()}


def matched(gt: np.ndarray, pred: np.ndarray, iou: float) -> int:
    """How many ground-truth boxes have a prediction with IoU >= ``iou`` (greedy one-to-one)."""
    if len(gt) == 0 or len(pred) == 0:
        return 0
    m = box_iou(gt, pred)
    found = 0
    used: set[int] = set()
    for g in np.argsort(-m.max(axis=1)):
        for p in np.argsort(-m[g]):
            if m[g, p] < iou:
                break
            if p not in used:
                used.add(int(p))
                found += 1
                break
    return found


def labelled_image(folder: Path, name: str) -> np.ndarray:
    """The picture ``name`` of a ``boxes.csv`` (``H x W x 3`` uint8 RGB): a photo in ``folder``, or
    ``clip.mp4#N``, the ``N``-th frame (from 0) of a video in ``folder`` (labelled frames, no extracted media)."""
    file, _, frame = name.partition("#")
    if not frame:
        return cv2.cvtColor(cv2.imread(str(folder / file)), cv2.COLOR_BGR2RGB)
    import av

    with av.open(str(folder / file)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == int(frame):
                return f.to_ndarray(format="rgb24")
    raise ValueError(f"{folder / file} has no frame {frame}")


def recall_by_image(detector: FaceDetector, truth: dict[str, np.ndarray], folder: Path, iou: float = 0.3
                    ) -> dict[str, RecallResult]:
    """Per picture of ``truth`` (:func:`load_boxes`, pictures as :func:`labelled_image` reads them): boxes found at
    ``iou``, boxes labelled, and what the detector gave."""
    import time

    out = {}
    for name, gt in truth.items():
        image = labelled_image(folder, name)
        t0 = time.perf_counter()
        dets = detector.detect(image)
        out[name] = RecallResult(matched(gt, dets.xyxy, iou), len(gt), len(dets), time.perf_counter() - t0)
    return out


def detector_recall(
    detector: FaceDetector, folder: Path, downscale: float = 1.0, iou: float = 0.3, scale: float = 1.0
) -> RecallResult:
    """Recall of ``detector`` on the photos in ``folder``, each first shrunk by ``downscale`` (1/2, 1/4...)."""
    import time

    truth = load_boxes(folder / "boxes.csv")
    found = total = ndet = 0
    seconds = 0.0
    for name, gt in truth.items():
        img = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
        if downscale != 1.0:
            size = (round(img.shape[1] * downscale), round(img.shape[0] * downscale))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            gt = gt * downscale
        t0 = time.perf_counter()
        dets = detector.detect(img, scale=scale)
        seconds += time.perf_counter() - t0
        found += matched(gt, dets.xyxy, iou)
        total += len(gt)
        ndet += len(dets)
    return RecallResult(found, total, ndet, seconds)
