"""Tiles on every k-th frame: the small faces of a 4K drone shot found at their own pixels without cutting every
frame into tiles.

A 4K frame's tiles cost about ten times its whole-frame pass (10.4 against 0.52 megapixels at 960 px), and the
faces only they find (8-40 px) stay in view for seconds. So in a video they are a second layer with its own
keyframes (:func:`deidcli.detection.keyframes.keyframe_detections`): every tile runs on every ``tile_every``-th
frame and on the last; between two such frames the faces the tiles found on both sides are interpolated, and those
only one side found, or found just under the threshold, are searched for in crops around them at the tiles' own
scale (:meth:`TileLayer.near`); where the crops would cover most of a frame, its tiles run (a whole 4K frame in
one pass would hold 2.6 GB in onnxruntime; a tile 0.3). A face large enough for the whole-frame pass (16 px there,
64 px in a 4K frame) is left to that pass between tiled frames. The whole-frame layer keeps its own schedule (every
``detect_every``-th frame); a frame's faces are both layers' merged. A small face is missed only when it comes and goes between two tiled frames without scoring half
the threshold on either, which the recall test (tests/test_tile_schedule.py) counts against tiles on every frame.
"""

from __future__ import annotations

import numpy as np

from deidcli.config import DeidConfig
from deidcli.detection.keyframes import search_around, search_crops
from deidcli.detection.tiling import TiledDetector, merge
from deidcli.detections import Detections

TILE_EVERY_S = 0.4  # the default: tiles every 0.4 s (every 10th frame at 25 fps, 12th at 30), searches between
TILE_SEARCH_MIN = 96  # a search crop is at least this many pixels a side at the tiles' scale: room to walk
WHOLE_SEEN = 16  # a face this many pixels high at the whole-frame pass's scale is that pass's to find between


class TileLayer:
    """The tiles of a :class:`TiledDetector` as one layer of detection: faces found only by them, class
    ``class_id``, beside a whole-frame pass at ``whole_scale``. ``image`` arguments are 8-bit RGB frames."""

    def __init__(self, tiled: TiledDetector, class_id: int, whole_scale: float) -> None:
        self.tiled, self.class_id, self.whole_scale = tiled, class_id, whole_scale

    def detect(self, image: np.ndarray) -> tuple[Detections, Detections]:
        """The faces every tile finds, and the near misses (half the threshold to it)."""
        faces, candidates = self.tiled.detect_tiles(image)
        faces.class_id[:] = candidates.class_id[:] = self.class_id
        return faces, candidates

    def near(self, image: np.ndarray, lone: Detections) -> Detections | None:
        """The small faces in crops of ``image`` around ``lone``'s boxes, at the tiles' scale; ``None`` where the
        crops would cover most of the frame, so the tiles run instead. A face of :data:`WHOLE_SEEN` px or more at
        the whole-frame pass's scale is that pass's to find between (it searches near what it found itself)."""
        h, w = image.shape[:2]
        sides = np.maximum(lone.xyxy[:, 2] - lone.xyxy[:, 0], lone.xyxy[:, 3] - lone.xyxy[:, 1])
        boxes = lone.xyxy[sides * self.whole_scale < WHOLE_SEEN]
        if not len(boxes):
            return Detections.empty()
        if search_crops(boxes, w, h, self.tiled.tile_scale, TILE_SEARCH_MIN) == [(0, 0, w, h)]:
            return None
        faces = search_around(self.tiled.base, image, boxes, self.tiled.tile_scale, TILE_SEARCH_MIN)
        faces.class_id[:] = self.class_id
        return faces

    def merged(self, whole: Detections, tiled: Detections) -> Detections:
        """A frame's regions: the whole-frame layer's (every target) with the tiles' faces merged into its faces."""
        faces = whole.class_id == self.class_id
        return Detections.concat([merge([whole[faces], tiled], self.tiled.iou), whole[~faces]])


def tile_every(cfg: DeidConfig, frame_rate: float | None) -> int:
    """Frames from one run of the tiles to the next: ``cfg.tile_every``, or for 0 (auto) :data:`TILE_EVERY_S` at
    the video's rate (25 fps when unknown), at least 2."""
    if cfg.tile_every:
        return cfg.tile_every
    return max(2, round(TILE_EVERY_S * float(frame_rate or 25)))
