"""`deid evaluate`: every method's privacy and image quality over a sweep of its strength, on photos of known people.

Protocol (methods.md sections 9 and 11): each photo's largest face is anonymized exactly as `deid run` does it (same
region, mask and blending). Each anonymized photo is then a probe against the *other* originals:

* identification, closed set: the rank of the true person among the identities sorted by their nearest gallery
  photo; rank-1 and rank-5 rates, beside their chance levels (a recognizer guessing);
* verification: the true-accept rate of (anonymized, other original of the same person) pairs at the distance
  threshold that accepts ``far`` of the impostor pairs among the originals;
* de-detection: the share of anonymized faces the face detector no longer finds (IoU 0.5 with the original box);
* quality: PSNR and SSIM of the face region (the anonymized region) and of the whole photo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from deidcli.detection import FaceDetector
from deidcli.detections import Detections, box_iou
from deidcli.errors import NoMediaError
from deidcli.evaluation.identification import (
    chance_rank_k,
    identity_ranks,
    open_set_rate,
    rank_k_rate,
    true_accept_rate,
    verification_threshold,
)
from deidcli.evaluation.msvdd import MSVDDRecognizer, msvdd_identification
from deidcli.evaluation.quality import box_region, changed_region_quality, psnr, psnr_from_mse, ssim
from deidcli.evaluation.recognizer import Recognizer, embed_faces
from deidcli.methods import get_method
from deidcli.methods.regions import RegionStyle, anonymize_frame, scale_boxes
from deidcli.photos import Photo, load_photos

# Strengths from weak to strong (methods.md section 10, extended until identity is gone).
SWEEPS: dict[str, tuple[float, ...]] = {
    "frost": (2, 4, 8, 16, 24),
    "blur": (1, 2, 3, 5, 8, 12, 16),
    "pixelate": (2, 4, 8, 12, 16, 24),
    "noise": (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8),
    "impulse": (0.02, 0.05, 0.1, 0.2, 0.4, 0.6),
    "solid": (0.1, 0.3, 0.5, 0.7, 0.85, 1.0),
    "svd": (32, 16, 8, 4, 2, 1, 0.5, 0.25),
    "pca": (64, 32, 16, 8, 4, 0),
    "hypersphere": (8, 6, 4, 2, 0),
    "ksame": (1, 2, 3, 5, 10, 20),
}
PRIVATE_RANK1 = 0.05  # "identity gone": rank-1 identification below 5%


@dataclass
class Setting:
    """The figures for one method at one strength."""

    method: str
    strength: float
    psnr_face: float
    ssim_face: float
    psnr_image: float
    ssim_image: float
    detected: float  # share of anonymized faces the detector still finds
    recognizers: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> rank1, rank5, tar


@dataclass
class Evaluation:
    folder: str
    photos: int
    identities: int
    skipped: list[str]  # photos where the detector found no face
    far: float
    baseline: dict[str, dict[str, float]]  # recognizer -> figures on the originals, and chance
    settings: list[Setting]
    examples: dict[tuple[str, float], list[np.ndarray]] = field(default_factory=dict, repr=False)

    def crossing(self, method: str, recognizer: str = "dlib", key: str = "rank1", below: float = PRIVATE_RANK1
                 ) -> dict | None:
        """The weakest strength of ``method`` whose ``key`` figure is below ``below``, with its quality."""
        for s in self.settings:
            fig = s.recognizers.get(recognizer, {})
            if s.method == method and fig.get(key, 1.0) < below:
                return {"strength": s.strength, key: fig[key], "psnr_face": s.psnr_face, "ssim_face": s.ssim_face}
        return None

    def crossings(self, recognizer: str) -> dict[str, dict[str, dict | None]]:
        """Per method, where identity is gone by three rules: closed-set rank-1 below 5%; at most twice chance
        (methods.md section 9: with few people chance itself can be above 5%); open-set rank-1 below 5%."""
        chance = self.baseline[recognizer]["chance_rank1"]
        return {
            m: {
                "rank1_below_5pct": self.crossing(m, recognizer),
                "rank1_at_most_2x_chance": self.crossing(m, recognizer, "rank1", 2 * chance + 1e-9),
                "open_rank1_below_5pct": self.crossing(m, recognizer, "rank1_open"),
            }
            for m in dict.fromkeys(s.method for s in self.settings)
        }

    def as_dict(self) -> dict:
        return {
            "folder": self.folder, "photos": self.photos, "identities": self.identities, "skipped": self.skipped,
            "far": self.far, "baseline": self.baseline,
            "settings": [_finite(asdict(s)) for s in self.settings],
            "identity_gone": {rec: self.crossings(rec) for rec in self.baseline},
        }


def _finite(d: dict) -> dict:
    """JSON has no infinity: an identical region's PSNR is reported as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else _finite(v) if isinstance(v, dict) else v)
            for k, v in d.items()}


def _detected(detector: FaceDetector, image: np.ndarray, box: np.ndarray) -> bool:
    """Does the detector still find a face on ``box``? Run on twice the box around it (as in the full photo,
    faster)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = scale_boxes(box[None], 2.0)[0]
    x1, y1, x2, y2 = max(0, int(x1)), max(0, int(y1)), min(w, int(math.ceil(x2))), min(h, int(math.ceil(y2)))
    found = detector.detect(np.ascontiguousarray(image[y1:y2, x1:x2]), 1.0)
    if not len(found):
        return False
    return bool((box_iou(box[None] - np.array([x1, y1, x1, y1]), found.xyxy) >= 0.5).any())


def evaluate(
    folder: Path,
    detector: FaceDetector,
    recognizers: list[Recognizer],
    methods: Iterable[str],
    strengths: Iterable[float] | None = None,
    basis: str | None = None,
    far: float = 0.01,
    mask_scale: float = 1.3,
    examples: int = 4,
    device: torch.device | str = "cpu",
    on_step: Callable[[str], None] | None = None,
) -> Evaluation:
    """Sweep each of ``methods`` over ``strengths`` (default: its sweep in :data:`SWEEPS`) on ``folder``'s photos;
    ``on_step("method strength")`` after each setting."""
    photos = load_photos(folder, detector)
    skipped = [str(p.path.name) for p in photos if p.box is None]
    photos = [p for p in photos if p.box is not None]
    if len(photos) < 3:
        raise NoMediaError(f"{folder}: fewer than 3 photos with a face the detector finds")
    ids = np.array([p.identity for p in photos])
    clean = _embed_all(recognizers, lambda r: np.concatenate([embed_faces(r, p.image, p.box[None]) for p in photos]))
    thresholds = {name: verification_threshold(e, ids, far) for name, e in clean.items()}
    baseline = {}
    recognizers_by_name = {r.name: r for r in recognizers}
    for name, e in clean.items():
        ranks = identity_ranks(e, ids, e, ids)
        hardened = _msvdd(recognizers_by_name[name], e, e, ids)
        baseline[name] = {
            "rank1": rank_k_rate(ranks, 1), "rank5": rank_k_rate(ranks, 5),
            "rank1_open": open_set_rate(e, e, ids, recognizers_by_name[name].match_distance),
            "tar": true_accept_rate(e, e, ids, thresholds[name]), "threshold": thresholds[name],
            "chance_rank1": chance_rank_k(ids, 1), "chance_rank5": chance_rank_k(ids, 5),
            "findable": int(np.isfinite(ranks).sum()), **hardened,
        }
    result = Evaluation(str(folder), len(photos), len(set(ids)), skipped, far, baseline, [])
    for name in methods:
        method = get_method(name, basis, device)
        for strength in (tuple(strengths) if strengths else SWEEPS[name]):
            result.settings.append(
                _one_setting(photos, ids, method, float(strength), mask_scale, detector, recognizers, clean,
                             thresholds, device, result.examples.setdefault((name, float(strength)), []), examples)
            )
            if on_step:
                on_step(f"{name} {strength:g}")
    return result


def _one_setting(photos: list[Photo], ids, method, strength, mask_scale, detector, recognizers, clean, thresholds,
                 device, example_crops: list, examples: int) -> Setting:
    style = RegionStyle(method, strength, mask_scale=mask_scale)
    q = {"pf": [], "sf": [], "pi": [], "si": []}
    detected = 0
    anon_embeds: dict[str, list[np.ndarray]] = {r.name: [] for r in recognizers}
    for i, p in enumerate(photos):
        dets = Detections(p.box[None].astype(np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
        anon = anonymize_frame(p.image, dets, style, frame_index=i, device=device)
        region = scale_boxes(p.box[None], mask_scale)[0]
        a, b = box_region(p.image, region), box_region(anon, region)
        q["pf"].append(psnr(a, b))
        q["sf"].append(ssim(a, b))
        mse, whole_ssim = changed_region_quality(p.image, anon, region)
        q["pi"].append(psnr_from_mse(mse))
        q["si"].append(whole_ssim)
        detected += _detected(detector, anon, p.box)
        for name, e in _embed_all(recognizers, lambda r, a=anon, b=p.box: embed_faces(r, a, b[None])[0]).items():
            anon_embeds[name].append(e)
        if i < examples:
            example_crops.append(b.copy())
    per_rec = {}
    for r in recognizers:
        e = np.stack(anon_embeds[r.name])
        ranks = identity_ranks(e, ids, clean[r.name], ids)
        per_rec[r.name] = {
            "rank1": rank_k_rate(ranks, 1), "rank5": rank_k_rate(ranks, 5),
            "rank1_open": open_set_rate(e, clean[r.name], ids, r.match_distance),
            "tar": true_accept_rate(e, clean[r.name], ids, thresholds[r.name]),
            **_msvdd(r, e, clean[r.name], ids),
        }
    return Setting(
        method.name, strength, _mean_psnr(q["pf"]), float(np.mean(q["sf"])), _mean_psnr(q["pi"]),
        float(np.mean(q["si"])), detected / len(photos), per_rec,
    )


def _embed_all(recognizers: list[Recognizer], embed: Callable[[Recognizer], np.ndarray]) -> dict[str, np.ndarray]:
    """``embed(r)`` for each recognizer by name, once per network (M-SVDD reuses its base's embeddings)."""
    by_network: dict[str, np.ndarray] = {}
    out = {}
    for r in recognizers:
        network = r.base.name if isinstance(r, MSVDDRecognizer) else r.name
        if network not in by_network:
            by_network[network] = embed(r)
        out[r.name] = by_network[network]
    return out


def _msvdd(rec: Recognizer, probes: np.ndarray, gallery: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """For an M-SVDD recognizer, its own identification figures (they replace the nearest-photo ones)."""
    return msvdd_identification(probes, gallery, ids) if isinstance(rec, MSVDDRecognizer) else {}


def _mean_psnr(values: list[float]) -> float:
    """Mean PSNR over photos from their mean squared error (an unchanged photo would make the mean infinite)."""
    mse = [10 ** (-v / 10) for v in values]
    m = float(np.mean(mse))
    return float("inf") if m == 0 else -10 * math.log10(m)
