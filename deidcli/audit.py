"""An independent check of a finished output: is any face of the original still visible in it?

The original is searched again with the audit's own detector settings (by default CenterFace at full resolution,
not the run's downscaled inference). A candidate counts as a face when it scores high, or when a second,
independent detector (MTCNN, on a crop around it) agrees: carved lions on a building are not people. Each face is
compared with the same region of the output, and leaks when

* the region is unchanged (SSIM against the original at or above ``ssim_leak``), or
* the detector still finds a confident face there in the output (score at or above ``redetect_score``; a frosted
  or pixelated head still draws weak scores), or
* (optional) a face recognizer still matches it: dlib distance below 0.6. Off by default: the original and the
  output share hair, clothes and background in the same frame, which alone brings dlib near 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from deidcli.detection.base import FaceDetector
from deidcli.detections import box_iou
from deidcli.errors import InvalidMediaError
from deidcli.recognition.recognizer import embed_faces
from deidcli.video import VideoReader


@dataclass
class FaceCheck:
    frame: int
    time_s: float
    box: list[float]
    score: float
    ssim: float
    redetected: float  # best detector score on the output at this place (0 when none)
    distance: float | None  # recognizer distance original vs output, when a recognizer was used
    leaked: bool


@dataclass
class AuditResult:
    frames: int
    faces: list[FaceCheck] = field(default_factory=list)
    resized: bool = False  # the output's frame size differs from the original's
    unconfirmed: int = 0  # candidates neither scored high nor confirmed by the second detector

    @property
    def leaks(self) -> list[FaceCheck]:
        return [f for f in self.faces if f.leaked]

    @property
    def leak_rate(self) -> float:
        return len(self.leaks) / len(self.faces) if self.faces else 0.0

    def as_dict(self) -> dict:
        leaked_frames = sorted({f.frame for f in self.leaks})
        return {
            "frames": self.frames,
            "output_resized": self.resized,
            "faces_checked": len(self.faces),
            "candidates_unconfirmed": self.unconfirmed,
            "faces_leaked": len(self.leaks),
            "leak_rate": round(self.leak_rate, 6),
            "untouched": sum(1 for f in self.faces if f.ssim >= 0.999),
            "median_ssim": round(float(np.median([f.ssim for f in self.faces])), 4) if self.faces else None,
            "leaked_frames": [
                {"frame": i, "time_s": round(next(f.time_s for f in self.leaks if f.frame == i), 3)}
                for i in leaked_frames
            ],
            "leaks": [f.__dict__ for f in sorted(self.leaks, key=lambda f: -f.ssim)[:200]],
        }


def _frames(path: Path):
    reader = VideoReader(path)
    tb = reader.info.time_base
    for frame in reader.frames():
        yield (float(frame.pts * tb) if frame.pts is not None else 0.0), frame.image


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)


class Confirmer:
    """A second opinion from MTCNN on a crop around a candidate face."""

    def __init__(self, min_prob: float = 0.9) -> None:
        from deidcli.detection import build_detector

        self._mtcnn = build_detector("mtcnn", threshold=min_prob)

    def __call__(self, image: np.ndarray, box: np.ndarray) -> bool:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        cx1, cy1 = int(max(x1 - w, 0)), int(max(y1 - h, 0))
        cx2, cy2 = int(min(x2 + w, image.shape[1])), int(min(y2 + h, image.shape[0]))
        crop = image[cy1:cy2, cx1:cx2]
        if crop.size == 0:
            return False
        up = max(1.0, 80.0 / max(min(w, h), 1.0))  # MTCNN wants faces of 20 px and more
        dets = self._mtcnn.detect(np.ascontiguousarray(crop), up)
        if len(dets) == 0:
            return False
        local = np.array([[x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1]])
        return bool(box_iou(local, dets.xyxy).max() >= 0.3)


def audit_video(
    original: Path,
    anonymized: Path,
    detector: FaceDetector,
    scale: float = 1.0,
    min_score: float = 0.5,
    ssim_leak: float = 0.5,
    min_size: int = 8,
    recognizer=None,
    confirm_score: float = 0.8,
    redetect_score: float = 0.8,
    confirmer: Confirmer | None = None,
    every: int = 1,
    on_frame: Callable[[], None] | None = None,
    keep_crops: int = 12,
) -> tuple[AuditResult, list[tuple[FaceCheck, np.ndarray, np.ndarray]]]:
    """Check every ``every``-th frame; also returns the original/output crops of the worst faces for a contact sheet."""
    result = AuditResult(frames=0)
    worst: list[tuple[FaceCheck, np.ndarray, np.ndarray]] = []
    pairs = zip(_frames(original), _frames(anonymized))
    index = -1
    for index, ((t, a), (_, b)) in enumerate(pairs):
        if on_frame:
            on_frame()
        if index % every:
            continue
        if a.shape != b.shape:
            # Some tools pad or rescale (deface writes 1920x1088 for 1080p); compare on the original's grid.
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
            result.resized = True
        dets = detector.detect(a, scale)
        keep = dets.confidence >= min_score
        if confirmer is not None:
            for k in np.flatnonzero(keep):
                if dets.confidence[k] < confirm_score and not confirmer(a, dets.xyxy[k]):
                    keep[k] = False
                    result.unconfirmed += 1
        boxes = dets.xyxy[keep]
        if not len(boxes):
            continue
        again = detector.detect(b, scale)
        again_score = np.zeros(len(boxes))
        if len(again):
            iou = box_iou(boxes, again.xyxy)
            again_score = np.where(iou >= 0.5, again.confidence[None, :], 0.0).max(axis=1)
        embeds_a = embeds_b = None
        if recognizer is not None:
            embeds_a, embeds_b = embed_faces(recognizer, a, boxes), embed_faces(recognizer, b, boxes)
        for k, (box, score) in enumerate(zip(boxes, dets.confidence[keep])):
            x1, y1, x2, y2 = np.round(box).astype(int).clip(0, None)
            if min(x2 - x1, y2 - y1) < min_size:
                continue
            ca, cb = a[y1:y2, x1:x2], b[y1:y2, x1:x2]
            win = min(7, (min(ca.shape[:2]) // 2) * 2 + 1)
            ssim = float(structural_similarity(_gray(ca), _gray(cb), data_range=255, win_size=win))
            dist = None if embeds_a is None else float(np.linalg.norm(embeds_a[k] - embeds_b[k]))
            redetected = float(again_score[k])
            leaked = (
                ssim >= ssim_leak
                or redetected >= redetect_score
                or (dist is not None and dist < recognizer.match_distance)
            )
            check = FaceCheck(index, t, [round(float(v), 1) for v in box], round(float(score), 3), round(ssim, 4),
                              round(redetected, 3), None if dist is None else round(dist, 4), bool(leaked))
            result.faces.append(check)
            worst.append((check, ca.copy(), cb.copy()))
            worst.sort(key=lambda w: (not w[0].leaked, -w[0].ssim))  # leaks first, then the most similar
            del worst[keep_crops:]
    for _ in pairs:  # unequal lengths: the output lost or gained frames
        raise InvalidMediaError("the two videos have different numbers of frames")
    result.frames = index + 1
    return result, worst


def contact_sheet(worst: list[tuple[FaceCheck, np.ndarray, np.ndarray]], path: Path, cell: int = 160) -> None:
    """A PNG grid: for each face, the original region beside the output region, with frame, time and SSIM."""
    tiles = []
    for check, a, b in worst:
        pair = []
        for crop in (a, b):
            h, w = crop.shape[:2]
            s = cell / max(h, w)
            img = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_NEAREST)
            canvas = np.full((cell, cell, 3), 40, np.uint8)
            canvas[: img.shape[0], : img.shape[1]] = img
            pair.append(canvas)
        tile = np.concatenate(pair, axis=1)
        label = np.full((24, tile.shape[1], 3), 255 if not check.leaked else 0, np.uint8)
        if check.leaked:
            label[:] = (200, 0, 0)
        text = f"f{check.frame} {check.time_s:.2f}s ssim {check.ssim:.2f}" + (" LEAK" if check.leaked else "")
        cv2.putText(label, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255) if check.leaked else (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([label, tile], axis=0))
    if not tiles:
        tiles = [np.full((60, 2 * cell, 3), 255, np.uint8)]
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)]
    sheet = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def audit_output(original: Path, anonymized: Path, every: int = 1) -> AuditResult:
    """The default audit (CenterFace at full resolution, MTCNN confirming low scores) of one finished video, as
    `deid run/batch --audit` and `--fail-on-leak` run it."""
    from deidcli.detection import build_detector

    result, _ = audit_video(original, anonymized, build_detector("centerface", 0.5, "cpu"), confirmer=Confirmer(),
                            every=every)
    return result
