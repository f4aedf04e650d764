"""Does the tile schedule cover every face that tiles on every frame find?

The reference is the exhaustive tiling deid ran before the schedule (deidcli/detection/tile_schedule.py): the whole
frame and every tile of the sliding grid with a quarter's overlap (:func:`deidcli.detection.tiling.tile_grid`), on
every frame. The candidate is what ``deid run`` anonymizes with a configuration: both layers on their keyframes,
tracked and covered. A reference face is covered when at least half of it lies inside the candidate's ellipses
(grown by the mask scale), as tests/test_real_footage.py measures the whole-frame stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from deidcli.anonymizer import FrameAnonymizer, eight_bit
from deidcli.config import DeidConfig
from deidcli.detection import inference_scale
from deidcli.detection.tiling import TiledDetector, tile_grid
from deidcli.detections import Detections
from deidcli.video.reader import Frame


@dataclass
class TileRecall:
    frames: int
    faces: int  # reference faces, over all frames
    uncovered: list[tuple[int, float, float]] = field(default_factory=list)  # (frame, score, height in px)
    frames_tiled: int = 0  # frames whose tiles ran under the schedule

    @property
    def covered(self) -> float:
        return 1.0 - len(self.uncovered) / max(self.faces, 1)


def covered_share(box: np.ndarray, regions: np.ndarray, scale: float) -> float:
    """The share of ``box`` inside the anonymized ellipses of ``regions`` (each grown by ``scale``), on an 8x8 grid."""
    xs, ys = np.meshgrid(np.linspace(box[0], box[2], 8), np.linspace(box[1], box[3], 8))
    inside = np.zeros(xs.shape, dtype=bool)
    for x1, y1, x2, y2 in regions:
        ax, ay = (x2 - x1) / 2 * scale, (y2 - y1) / 2 * scale
        inside |= ((xs - (x1 + x2) / 2) / ax) ** 2 + ((ys - (y1 + y2) / 2) / ay) ** 2 <= 0.96**2  # inside the feather
    return float(inside.mean())


def reference_faces(images: Sequence[np.ndarray], cfg: DeidConfig, anonymizer: FrameAnonymizer) -> list[Detections]:
    """The faces the whole frame and every tile of the sliding grid (a quarter's overlap) find, on each image, with
    ``anonymizer``'s face detector and threshold."""
    face = anonymizer.detectors["face"]
    base = face.base if isinstance(face, TiledDetector) else face
    tiled = TiledDetector(base, "auto" if cfg.tile == "off" else cfg.tile, cfg.max_side, cfg.tile_scale,
                          overlap=0.25, grid=tile_grid)
    out = []
    for image in images:
        h, w = image.shape[:2]
        out.append(tiled.detect(eight_bit(image), inference_scale(w, h, cfg.scale, cfg.max_side)))
    return out


def tile_recall(frames: Sequence[Frame], cfg: DeidConfig, frame_rate: float) -> TileRecall:
    """Every reference face (:func:`reference_faces`) checked against the regions ``deid run`` anonymizes under
    ``cfg`` (face target)."""
    from deidcli.pipeline import FileResult, tracked_regions

    anonymizer = FrameAnonymizer.from_config(cfg)
    reference = reference_faces([f.image for f in frames], cfg, anonymizer)
    result = FileResult("frames", "regions", "video")
    regions = list(tracked_regions(frames, anonymizer, cfg, frame_rate, result))
    recall = TileRecall(len(frames), sum(len(r) for r in reference),
                        frames_tiled=result.tiles.detected if result.tiles else len(frames))
    for (frame, found), truth in zip(regions, reference):
        for box, score in zip(truth.xyxy, truth.confidence):
            if covered_share(box, found.xyxy, cfg.mask_scale) < 0.5:
                recall.uncovered.append((frame.index, round(float(score), 2), round(float(box[3] - box[1]), 1)))
    return recall
