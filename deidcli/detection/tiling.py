"""Sliced inference for small faces in large frames (4K drone shots).

A face 15 px high in a 3840 px frame vanishes when the frame is shrunk to the detector's working size. The frame
is also cut into overlapping tiles, each run at its own pixels (or enlarged by ``tile_scale``); the whole-frame
pass still finds faces larger than a tile; all boxes are merged with non-maximum suppression.
"""

from __future__ import annotations

import math

import numpy as np

from deidcli.detection.base import FaceDetector
from deidcli.detections import Detections, nms


def tile_grid(width: int, height: int, tile_w: int, tile_h: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """``(x1, y1, x2, y2)`` tiles covering the frame, neighbours overlapping by ``overlap`` of a tile."""

    def starts(size: int, tile: int) -> list[int]:
        if size <= tile:
            return [0]
        step = max(1, int(tile * (1 - overlap)))
        n = math.ceil((size - tile) / step) + 1
        return [min(i * step, size - tile) for i in range(n)]

    tw, th = min(tile_w, width), min(tile_h, height)
    return [(x, y, x + tw, y + th) for y in starts(height, th) for x in starts(width, tw)]


def parse_tile(value: str, width: int, height: int, max_side: int) -> tuple[int, int] | None:
    """Tile size for ``--tile``: ``off``; ``auto`` (tiles of ``max_side`` when the frame is over twice that);
    or ``WxH``."""
    if value == "off":
        return None
    if value == "auto":
        return (max_side, max_side) if max(width, height) > 2 * max_side else None
    w, _, h = value.lower().partition("x")
    return int(w), int(h)


class TiledDetector:
    """Runs ``base`` on the whole frame and on every tile, and merges the boxes."""

    def __init__(self, base: FaceDetector, tile: str = "auto", max_side: int = 960, tile_scale: float = 1.0,
                 overlap: float = 0.25, iou: float = 0.3) -> None:
        self.base, self.tile, self.max_side = base, tile, max_side
        self.tile_scale, self.overlap, self.iou = tile_scale, overlap, iou
        self.name = f"{base.name}+tiles"
        self.default_threshold = base.default_threshold

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        h, w = image.shape[:2]
        whole = self.base.detect(image, scale)
        size = parse_tile(self.tile, w, h, self.max_side)
        if size is None:
            return whole
        parts = [whole]
        for x1, y1, x2, y2 in tile_grid(w, h, size[0], size[1], self.overlap):
            d = self.base.detect(np.ascontiguousarray(image[y1:y2, x1:x2]), self.tile_scale)
            if len(d):
                d.xyxy += np.array([x1, y1, x1, y1], dtype=np.float32)
                if d.landmarks is not None:
                    d.landmarks += np.array([x1, y1], dtype=np.float32)
                parts.append(d)
        return merge(parts, self.iou)


    def detect_with_candidates(self, image: np.ndarray, scale: float = 1.0) -> tuple[Detections, Detections]:
        """:meth:`detect` and the base detector's near misses, on frames small enough to need no tiles (tiles
        merge overlapping boxes, so a near miss could absorb a face: there no candidates are given)."""
        h, w = image.shape[:2]
        if parse_tile(self.tile, w, h, self.max_side) is None and hasattr(self.base, "detect_with_candidates"):
            return self.base.detect_with_candidates(image, scale)
        return self.detect(image, scale), Detections.empty()

    def detect_with_candidates_many(self, images: list[np.ndarray], scale: float = 1.0
                                    ) -> list[tuple[Detections, Detections]]:
        """:meth:`detect_with_candidates` on each of ``images`` (frames of one video: one size), in one batch
        where the base detector batches and the frames need no tiles."""
        many = getattr(self.base, "detect_with_candidates_many", None)
        if images and many is not None:
            h, w = images[0].shape[:2]
            if parse_tile(self.tile, w, h, self.max_side) is None and all(i.shape == images[0].shape for i in images):
                return many(images, scale)
        return [self.detect_with_candidates(image, scale) for image in images]


def merge(parts: list[Detections], iou: float) -> Detections:
    xyxy = np.concatenate([p.xyxy for p in parts])
    if not len(xyxy):
        return Detections.empty()
    conf = np.concatenate([p.confidence for p in parts])
    cls = np.concatenate([p.class_id for p in parts])
    lms = None
    if all(p.landmarks is not None for p in parts):
        lms = np.concatenate([p.landmarks.reshape(-1, 5, 2) for p in parts])
    keep = nms(xyxy, conf, iou)
    xyxy, conf, cls = xyxy[keep], conf[keep], cls[keep]
    lms = None if lms is None else lms[keep]
    keep = absorb_parts(xyxy, cls)
    return Detections(xyxy[keep], conf[keep], cls[keep], None if lms is None else lms[keep])


def absorb_parts(xyxy: np.ndarray, cls: np.ndarray, share: float = 0.6) -> np.ndarray:
    """Indices of the boxes to keep once every box lying mostly (``share`` of its area) inside a larger box of the
    same class is absorbed into it; the larger box grows to cover both.

    A tile border cuts a face in two: the tile sees half a face, the whole frame the face. NMS keeps both (their
    IoU is low), and two regions on one face would, for instance, cover half of a consented actor's face. ``xyxy``
    is updated in place.
    """
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    alive = np.ones(len(xyxy), dtype=bool)
    for i in np.argsort(area):  # smallest first, so parts fold into the largest box that holds them
        for j in np.argsort(-area):
            if j == i or not alive[j] or area[j] <= area[i] or cls[j] != cls[i]:
                continue
            iw = min(xyxy[i, 2], xyxy[j, 2]) - max(xyxy[i, 0], xyxy[j, 0])
            ih = min(xyxy[i, 3], xyxy[j, 3]) - max(xyxy[i, 1], xyxy[j, 1])
            if iw > 0 and ih > 0 and iw * ih >= share * area[i]:
                xyxy[j, :2] = np.minimum(xyxy[j, :2], xyxy[i, :2])
                xyxy[j, 2:] = np.maximum(xyxy[j, 2:], xyxy[i, 2:])
                alive[i] = False
                break
    return np.nonzero(alive)[0]
