"""Sliced inference for small faces in large frames (4K drone shots).

A face 15 px high in a 3840 px frame vanishes when the frame is shrunk to the detector's working size. The frame
is also cut into overlapping tiles, each run at its own pixels (or enlarged by ``tile_scale``); the whole-frame
pass still finds faces larger than a tile; all boxes are merged with non-maximum suppression.

The tiles are the fewest of at most ``max_side`` a side that overlap by 15% of it (:func:`even_tiles`: 15 tiles of
896 x 832 px, 11.2 megapixels, for a 4K frame): a face up to 144 px lies whole in one of them, and a larger one is
the whole-frame pass's (it is 36 px there). The sliding grid with a quarter's overlap (:func:`tile_grid`) cut 15
tiles of 960 x 960 px, 13.8 megapixels, for the same faces. In a video the tiles run on every ``tile_every``-th
frame only (deidcli/detection/tile_schedule.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from deidcli.detection.base import FaceDetector
from deidcli.detections import Detections, box_iou, nms

TILE_OVERLAP = 0.15  # neighbouring tiles share this share of the largest tile side (144 px at 960)
Grid = Callable[[int, int, int, int, float], list[tuple[int, int, int, int]]]


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


def even_tiles(width: int, height: int, tile_w: int, tile_h: int, overlap: float = TILE_OVERLAP
               ) -> list[tuple[int, int, int, int]]:
    """The fewest ``(x1, y1, x2, y2)`` tiles of at most ``tile_w x tile_h`` covering the frame, spread evenly, sides
    a multiple of 32 (CenterFace's stride: a tile is not stretched) where the frame allows, neighbours overlapping
    by at least ``overlap`` of the larger tile side."""
    margin = int(round(overlap * max(tile_w, tile_h)))

    def spans(size: int, most: int) -> list[tuple[int, int]]:
        if size <= most:
            return [(0, size)]
        n = math.ceil((size - margin) / max(most - margin, 1))
        side = min(size, most, math.ceil((size + (n - 1) * margin) / n / 32) * 32)
        side = max(side, math.ceil((size + (n - 1) * margin) / n))  # ``most`` below a multiple of 32
        return [(s, s + side) for s in (round(i * (size - side) / (n - 1)) for i in range(n))]

    return [(x1, y1, x2, y2) for y1, y2 in spans(height, tile_h) for x1, x2 in spans(width, tile_w)]


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
                 overlap: float = TILE_OVERLAP, iou: float = 0.3, grid: Grid = even_tiles) -> None:
        self.base, self.tile, self.max_side = base, tile, max_side
        self.tile_scale, self.overlap, self.iou, self.grid = tile_scale, overlap, iou, grid
        self.name = f"{base.name}+tiles"
        self.default_threshold = base.default_threshold

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The tiles a ``width x height`` frame is cut into; none where it needs none."""
        size = parse_tile(self.tile, width, height, self.max_side)
        return [] if size is None else self.grid(width, height, size[0], size[1], self.overlap)

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        whole = self.base.detect(image, scale)
        if not self.tiles(image.shape[1], image.shape[0]):
            return whole
        return merge([whole, self.detect_tiles(image)[0]], self.iou)

    def detect_tiles(self, image: np.ndarray) -> tuple[Detections, Detections]:
        """What the tiles alone find, and the candidates that scored between half the threshold and it (where the
        base detector tells them: CenterFace), each merged across tiles; a candidate overlapping a face is dropped."""
        found, near = [], []
        with_candidates = getattr(self.base, "detect_with_candidates", None)
        for x1, y1, x2, y2 in self.tiles(image.shape[1], image.shape[0]):
            crop = np.ascontiguousarray(image[y1:y2, x1:x2])
            if with_candidates is not None:
                d, c = with_candidates(crop, self.tile_scale)
            else:
                d, c = self.base.detect(crop, self.tile_scale), Detections.empty()
            found += [shifted(d, x1, y1)] if len(d) else []
            near += [shifted(c, x1, y1)] if len(c) else []
        faces = merge(found, self.iou) if found else Detections.empty()
        candidates = merge(near, self.iou) if near else Detections.empty()
        if len(faces) and len(candidates):
            candidates = candidates[box_iou(candidates.xyxy, faces.xyxy).max(axis=1) <= self.iou]
        return faces, candidates


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


def shifted(d: Detections, x: int, y: int) -> Detections:
    """``d`` (found in a crop whose corner is at ``x, y``) in the frame's pixels, in place."""
    d.xyxy += np.array([x, y, x, y], dtype=np.float32)
    if d.landmarks is not None:
        d.landmarks += np.array([x, y], dtype=np.float32)
    return d


def merge(parts: list[Detections], iou: float) -> Detections:
    """``parts`` as one record, overlapping boxes suppressed (NMS at ``iou``) and parts of a box absorbed into it
    (:func:`absorb_parts`); landmarks kept where every non-empty part has them."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Detections.empty()
    xyxy = np.concatenate([p.xyxy for p in parts])
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
