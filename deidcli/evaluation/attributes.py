"""What an anonymized face keeps besides identity (methods.md sections 3 and 11.6): pose and expression from the
face detector's five landmarks, skin tone, detail, and how varied the new faces are.

* pose and expression, from the landmarks (left eye, right eye, nose, left and right mouth corner), each scaled by
  the distance between the eyes so that faces of any size compare: *yaw* (the nose's sideways offset from the
  eyes' midpoint), *pitch* (where the nose sits between the eye line and the mouth line), *roll* (the eye line's
  angle, radians) and *mouth* (mouth width, which a smile widens);
* *tone*: the mean colour of the central half of the face box, in ``[0, 1]`` per channel;
* *detail*: the variance of the Laplacian of the face box's luminance, the box resampled to 64 x 64 first (pca's
  and ksame's blurred mean faces have almost none, a natural face has the original's). 64 px is the scale of faces
  in drone footage and of the generative methods' decoder; at a photo's own resolution the Laplacian measures
  sensor noise and JPEG blocks, which any resampling removes (blur 1 keeps under 1% of it);
* *diversity* (methods.md 3): the mean pairwise embedding distance of the anonymized faces over that of the
  originals; near 1 the new faces are as varied as the people, near 0 everyone became one person.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from deidcli.evaluation.quality import box_region

POSE_KEYS = ("yaw", "pitch", "roll", "mouth")


def pose(landmarks: np.ndarray) -> dict[str, float]:
    """Yaw, pitch, roll and mouth width (see the module docstring) of one face's ``(5, 2)`` landmarks."""
    left_eye, right_eye, nose, left_mouth, right_mouth = np.asarray(landmarks, dtype=np.float64)
    eyes = (left_eye + right_eye) / 2
    mouth = (left_mouth + right_mouth) / 2
    across = right_eye - left_eye
    eye_dist = max(float(np.hypot(*across)), 1e-6)
    axis = across / eye_dist
    down = np.array([-axis[1], axis[0]])  # perpendicular to the eye line, pointing to the mouth
    mouth_depth = max(float((mouth - eyes) @ down), 1e-6)
    return {
        "yaw": float((nose - eyes) @ axis) / eye_dist,
        "pitch": float((nose - eyes) @ down) / mouth_depth,
        "roll": float(np.arctan2(across[1], across[0])),
        "mouth": float(np.hypot(*(right_mouth - left_mouth))) / eye_dist,
    }


def tone(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The mean colour ``(3,)`` in ``[0, 1]`` of the central half of ``box`` (skin, not hair or background)."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    w, h = x2 - x1, y2 - y1
    inner = np.array([x1 + w / 4, y1 + h / 4, x2 - w / 4, y2 - h / 4])
    region = box_region(image, inner)
    if region.size == 0:
        region = box_region(image, box)
    return region.reshape(-1, 3).mean(0) / 255.0


DETAIL_SIZE = 64


def detail(image: np.ndarray, box: np.ndarray, size: int = DETAIL_SIZE) -> float:
    """The variance of the Laplacian of the luminance inside ``box``, resampled to ``size`` x ``size``."""
    region = box_region(image, box)
    if min(region.shape[:2]) < 3:
        return 0.0
    region = cv2.resize(np.ascontiguousarray(region), (size, size), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def detail_ratio(originals: Sequence[float], outputs: Sequence[float]) -> float:
    """Detail of the outputs over the originals', as the ratio of their sums (a featureless original would make a
    mean of per-photo ratios infinite)."""
    base = float(np.sum(originals))
    return float(np.sum(outputs)) / base if base > 0 else float("nan")


def attribute_errors(originals: Sequence[dict], outputs: Sequence[dict]) -> dict[str, float]:
    """Mean absolute change of each pose figure (over the faces whose output still has landmarks) and of tone (over
    all), and the share of outputs with landmarks (``found``). Each item: ``{"pose": dict | None, "tone": (3,)}``,
    ``pose`` None where the detector found no face."""
    pairs = list(zip(originals, outputs))
    out: dict[str, float] = {
        "found": sum(b["pose"] is not None for b in outputs) / max(len(outputs), 1),
        "tone": float(np.mean([np.abs(a["tone"] - b["tone"]).mean() for a, b in pairs])) if pairs else float("nan"),
    }
    posed = [(a["pose"], b["pose"]) for a, b in pairs if a["pose"] is not None and b["pose"] is not None]
    for key in POSE_KEYS:
        out[key] = float(np.mean([abs(a[key] - b[key]) for a, b in posed])) if posed else float("nan")
    return out


def diversity(anonymized: np.ndarray, originals: np.ndarray) -> float:
    """``mean_{i != j} |e(x_p^i) - e(x_p^j)| / mean_{i != j} |e(x^i) - e(x^j)|`` over ``(N, D)`` embeddings."""
    from scipy.spatial.distance import pdist

    def spread(e: np.ndarray) -> float:
        return float(pdist(np.asarray(e, dtype=np.float64)).mean()) if len(e) > 1 else float("nan")

    base = spread(originals)
    return spread(anonymized) / base if base > 0 else float("nan")
