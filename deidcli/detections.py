"""The one record of what was found in a frame; it flows unchanged from detectors to the anonymizer and report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Boxes found in one image.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixels of the image they were found in, ``x1, y1, x2, y2``.
        confidence: ``(N,)`` float32 scores in ``[0, 1]``.
        class_id: ``(N,)`` int32 target class (0 = face).
        landmarks: ``(N, 5, 2)`` float32 facial landmarks (eyes, nose, mouth corners) or ``None``.
        tracker_id: ``(N,)`` int64 track ids, ``-1`` for none; ``None`` before tracking. Boxes carried into frames
            where the detector missed a tracked object have confidence 0.
        polygons: ``(N,)`` object array, each entry ``None`` (the region is its box) or a ``(K, 2)`` float64 polygon
            in pixels (continuous: pixel (i, j) covers [i, i+1) x [j, j+1)) that the region's box bounds: an area
            placed in the frame (deidcli/areas/). ``None`` when no region has one.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    landmarks: np.ndarray | None = None
    tracker_id: np.ndarray | None = None
    polygons: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
        if self.polygons is not None and not (isinstance(self.polygons, np.ndarray) and self.polygons.dtype == object):
            self.polygons = objects(self.polygons)
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n or (
            self.tracker_id is not None and len(self.tracker_id) != n
        ) or (self.polygons is not None and len(self.polygons) != n):
            raise ValueError("xyxy, confidence and class_id must have the same length")

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    @classmethod
    def concat(cls, parts: list["Detections"]) -> "Detections":
        """One record of all ``parts`` (several targets, or several passes); landmarks kept where every non-empty
        part has them (faces alone), track ids where every one has them (tracked regions and the areas placed
        beside them), polygons where any has them."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        lms = np.concatenate([p.landmarks for p in parts]) if all(p.landmarks is not None for p in parts) else None
        tids = np.concatenate([p.tracker_id for p in parts]) if all(p.tracker_id is not None for p in parts) else None
        polygons = None
        if any(p.polygons is not None for p in parts):
            polygons = np.concatenate([p.polygons if p.polygons is not None else objects([None] * len(p))
                                       for p in parts])
        return cls(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.confidence for p in parts]),
                   np.concatenate([p.class_id for p in parts]), lms, tids, polygons)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> "Detections":
        lm = None if self.landmarks is None else self.landmarks[index]
        tid = None if self.tracker_id is None else self.tracker_id[index]
        polygons = None
        if self.polygons is not None:  # an object array: one integer index gives the bare polygon, not a row
            polygons = self.polygons[np.atleast_1d(np.arange(len(self))[index])]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], lm, tid, polygons)

    def scaled(self, fx: float, fy: float) -> "Detections":
        """Boxes and landmarks multiplied by ``(fx, fy)``: map from an inference-sized image back to the frame."""
        xyxy = self.xyxy * np.array([fx, fy, fx, fy], dtype=np.float32)
        lm = None if self.landmarks is None else self.landmarks * np.array([fx, fy], dtype=np.float32)
        tid = None if self.tracker_id is None else self.tracker_id.copy()
        polygons = None
        if self.polygons is not None:
            polygons = objects([None if p is None else p * np.array([fx, fy]) for p in self.polygons])
        return Detections(xyxy, self.confidence.copy(), self.class_id.copy(), lm, tid, polygons)

    def to_records(self) -> list[dict]:
        """Plain lists for JSON output."""
        ids = self.tracker_id if self.tracker_id is not None else np.full(len(self), -1)
        return [
            # Full float32 precision, so regions read back from a file are the very same pixels.
            {"box": [float(v) for v in box], "score": float(s), "class_id": int(c),
             "track_id": int(t)}
            for box, s, c, t in zip(self.xyxy, self.confidence, self.class_id, ids)
        ]


def objects(items: list) -> np.ndarray:
    """A 1-D object array of ``items`` (np.array would stack polygons of one length into a 3-D array)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of two sets of ``xyxy`` boxes, shape ``(len(a), len(b))``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        ious = box_iou(xyxy[i : i + 1], xyxy[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def merge_overlapping(crops: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Integer rectangles ``(x1, y1, x2, y2)`` that overlap replaced by their bounding rectangle, until none
    overlap (a face near another is searched for once; a pixel is pasted once)."""
    crops = list(crops)
    merged = True
    while merged:
        merged = False
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                a, b = crops[i], crops[j]
                if min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]):
                    crops[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del crops[j]
                    merged = True
                    break
            if merged:
                break
    return crops
