"""`deid evaluate`: every method's privacy and image quality over a sweep of its strength, on photos of known people.

Protocol (methods.md sections 9 and 11): each photo's largest face is anonymized exactly as `deid run` does it (same
region, mask and blending). Each anonymized photo is then a probe against the *other* originals:

* identification, closed set: the rank of the true person among the identities sorted by their nearest gallery
  photo; rank-1 and rank-5 rates, beside their chance levels: the analytic one of a recognizer guessing (in the
  baseline) and, per setting, the one measured by giving each probe another person's anonymized face
  (:func:`~deidcli.evaluation.identification.measured_chance`);
* verification: the true-accept rate of (anonymized, other original of the same person) pairs at the distance
  threshold that accepts ``far`` of the impostor pairs among the originals;
* de-detection: the share of anonymized faces the face detector no longer finds (IoU 0.5 with the original box);
* quality: PSNR and SSIM of the face region (the anonymized region) and of the whole photo;
* what a natural replacement keeps (:mod:`deidcli.evaluation.attributes`): the change of pose and expression
  (from the detector's landmarks), of skin tone, the face's detail against the original's, and the diversity of
  the anonymized faces' embeddings.

The attacker is given the original face box, so each recognizer looks exactly where the face was. A setting
*protects* (:func:`protects`) when, for dlib and FaceNet alike, closed-set rank-1 is not significantly above that
setting's measured chance (a one-sided binomial test at 5%) and open-set rank-1 is below 5%. Each method's sweep runs from weak to strong and, unless
``full_sweep``, ends once two settings in a row protect: stronger ones only cost time.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from deidcli.config import FACE_MASK_SCALE
from deidcli.detection import FaceDetector
from deidcli.detections import Detections, box_iou
from deidcli.errors import NoMediaError
from deidcli.evaluation.attributes import attribute_errors, detail, detail_ratio, diversity, pose, tone
from deidcli.evaluation.identification import (
    chance_rank_k,
    identity_ranks,
    measured_chance,
    open_set_rate,
    rank_k_rate,
    true_accept_rate,
    verification_threshold,
)
from deidcli.evaluation.quality import box_region, changed_region_quality, psnr, psnr_from_mse, ssim
from deidcli.evaluation.split import in_split
from deidcli.methods import get_method
from deidcli.methods.regions import RegionStyle, anonymize_frame, scale_boxes
from deidcli.photos import Photo, load_photos
from deidcli.recognition.msvdd import MSVDDRecognizer, msvdd_identification
from deidcli.recognition.recognizer import DlibRecognizer, Recognizer, face_crops

# Strengths from weak to strong (methods.md section 10), each to its end (svd rank 0, pca 0 and hypersphere radius 0
# keep nothing of the face's own coefficients, solid 1.0 nothing of its pixels; noise 4 and impulse 0.95 drown it, k
# 100 of the 100 gallery faces is the mean face) and through its default. Points that told nothing new on the shared
# identities were left out (every face still found at the weak end, curves flat between neighbours), so that the 37
# settings of every method, the generative ones included, run in under 10 minutes on 2 cores (a setting costs about
# 12 s there, dlib's descriptors beside the rest in a process of their own). Each sweep ends early once two settings
# in a row protect.
SWEEPS: dict[str, tuple[float, ...]] = {
    "frost": (4, 8, 24),
    "blur": (5, 8, 16),
    "pixelate": (4, 8, 16),
    "noise": (1, 2, 4),
    "impulse": (0.6, 0.8, 0.95),
    "solid": (0.5, 1.0),
    "svd": (8, 0),
    "pca": (16, 0),
    "hypersphere": (8, 2, 0),
    "ksame": (5, 20, 50, 100),
    # the generative methods (with the generative extra; their models train on first use)
    "autoencoder": (0, 0.5, 1),  # 1: the same mean face for everyone
    "autoencoder-ap": (0.5, 1),
    "gan": (0.5, 1),
    "replace": (0.75, 1),
}
PRIVATE_RANK1 = 0.05  # "identity gone": rank-1 identification below 5%
PROTECT_RECOGNIZERS = ("dlib", "facenet")  # the privacy rule needs both: one black box, one other network
CHANCE_ALPHA = 0.05  # rank-1 counts as above chance only when a guesser scores that high less often than this
PROTECT_RULE = ("for dlib and FaceNet alike: closed-set rank-1 not above that setting's measured chance "
                "(chance_rank1): a recognizer guessing at that chance scores at least as many hits on as many probes "
                f"with probability >= {CHANCE_ALPHA:g} (exact one-sided binomial test; with no probe count, rank-1 "
                "<= chance_rank1), and open-set rank-1 (rank1_open) < 5%")
STOP_AFTER = 2  # a sweep ends once this many settings in a row protect (unless full_sweep)
EMBED_BATCH = 64  # crops per forward pass
FOUND_SIDE = 320  # longest side of the crop the detector looks at for a face (twice the box)


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
    # name -> rank1, rank5, rank1_open, tar, chance_rank1, chance_rank1_open, diversity (on this setting's faces)
    recognizers: dict[str, dict[str, float]] = field(default_factory=dict)
    detail: float = math.nan  # Laplacian variance of the face boxes, anonymized over original (attributes.detail)
    # mean absolute change of yaw, pitch, roll, mouth (where the detector still finds the face) and tone; found
    attributes: dict[str, float] = field(default_factory=dict)


def chance_p_value(rank1: float, chance: float, probes: int) -> float:
    """How often a recognizer that hits each probe with probability ``chance`` scores ``rank1`` or more over
    ``probes`` probes: ``P(X >= round(rank1 * probes))`` for ``X ~ Binomial(probes, chance)``.

    With 30 probes one face moves rank-1 by 3 points, so a method that leaves no identity at all lands above
    its measured chance about half the time; this says whether it is *significantly* above."""
    from scipy.stats import binom

    hits = round(rank1 * probes)
    return float(binom.sf(hits - 1, probes, min(max(chance, 0.0), 1.0))) if hits > 0 else 1.0


def at_chance(fig: Mapping[str, float]) -> bool:
    """Closed-set rank-1 of one recognizer's figures not above its measured chance (:data:`PROTECT_RULE`)."""
    if "probes" not in fig:
        return fig["rank1"] <= fig["chance_rank1"] + 1e-9
    return chance_p_value(fig["rank1"], fig["chance_rank1"], int(fig["probes"])) >= CHANCE_ALPHA


def protects(setting: Setting, recognizers: Iterable[str] = PROTECT_RECOGNIZERS) -> bool:
    """The privacy rule (:data:`PROTECT_RULE`): for every one of ``recognizers``, closed-set rank-1 not
    significantly above the setting's measured chance (:func:`at_chance`) and open-set rank-1 below 5%. A
    recognizer that was not measured cannot vouch for the setting: then it does not protect."""
    for name in recognizers:
        fig = setting.recognizers.get(name)
        if fig is None or not (at_chance(fig) and fig["rank1_open"] < PRIVATE_RANK1):
            return False
    return True


@dataclass
class Evaluation:
    folder: str
    photos: int
    identities: int
    skipped: list[str]  # photos where the detector found no face
    far: float
    baseline: dict[str, dict[str, float]]  # recognizer -> figures on the originals, and the analytic chance
    settings: list[Setting]
    examples: dict[tuple[str, float], list[np.ndarray]] = field(default_factory=dict, repr=False)
    originals: list[np.ndarray] = field(default_factory=list, repr=False)  # the examples' original regions
    split: str = "all"  # the people measured: all, or the tune / confirm half (deidcli.evaluation.split)
    full_sweep: bool = True  # False: a sweep ended once STOP_AFTER settings in a row protected

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
            for m in self.methods()
        }

    def methods(self) -> list[str]:
        return list(dict.fromkeys(s.method for s in self.settings))

    def rule_measurable(self) -> bool:
        """Were both recognizers of the privacy rule measured?"""
        return all(r in self.baseline for r in PROTECT_RECOGNIZERS)

    def weakest_protecting(self, method: str) -> Setting | None:
        """The first setting of ``method``'s sweep (weak to strong) that :func:`protects`, or None."""
        return next((s for s in self.settings if s.method == method and protects(s)), None)

    def protecting(self) -> dict[str, dict | None]:
        """Per method, the weakest protecting strength with its figures (JSON's ``identity_gone.protects``)."""
        return {m: protect_summary(s) if (s := self.weakest_protecting(m)) else None for m in self.methods()}

    def as_dict(self) -> dict:
        gone: dict = {rec: self.crossings(rec) for rec in self.baseline}
        gone["protects"] = {"rule": PROTECT_RULE, "measurable": self.rule_measurable(), "methods": self.protecting()}
        return {
            "folder": self.folder, "split": self.split, "photos": self.photos, "identities": self.identities,
            "skipped": self.skipped, "far": self.far, "full_sweep": self.full_sweep, "baseline": self.baseline,
            "settings": [_finite(asdict(s)) for s in self.settings],
            "identity_gone": gone,
        }


def protect_summary(s: Setting) -> dict:
    """The figures the privacy rule reads, with the quality and de-detection of the setting."""
    keys = ("rank1", "chance_rank1", "rank1_open", "probes")
    return _finite({
        "strength": s.strength, "detected": s.detected, "psnr_face": s.psnr_face, "ssim_face": s.ssim_face,
        "detail": s.detail, "attributes": s.attributes,
        **{rec: {k: s.recognizers[rec][k] for k in keys if k in s.recognizers[rec]} for rec in PROTECT_RECOGNIZERS
           if rec in s.recognizers},
    })


def _finite(d: dict) -> dict:
    """JSON has no infinity: an identical region's PSNR is reported as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else _finite(v) if isinstance(v, dict) else v)
            for k, v in d.items()}


def _found(detector: FaceDetector, image: np.ndarray, box: np.ndarray) -> tuple[bool, np.ndarray | None]:
    """Does the detector still find a face on ``box`` (IoU 0.5), and that face's ``(5, 2)`` landmarks (None without
    them)? Run on twice the box around it (as in the full photo, faster), brought down to at most
    :data:`FOUND_SIDE` pixels: the face is still 160 px, far above what the detector needs, and a large
    photo's face costs a few times less."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = scale_boxes(box[None], 2.0)[0]
    x1, y1, x2, y2 = max(0, int(x1)), max(0, int(y1)), min(w, int(math.ceil(x2))), min(h, int(math.ceil(y2)))
    found = detector.detect(np.ascontiguousarray(image[y1:y2, x1:x2]), min(1.0, FOUND_SIDE / max(x2 - x1, y2 - y1)))
    if not len(found):
        return False, None
    iou = box_iou(box[None] - np.array([x1, y1, x1, y1]), found.xyxy)[0]
    best = int(np.argmax(iou))
    if iou[best] < 0.5:
        return False, None
    return True, None if found.landmarks is None else found.landmarks[best] + np.array([x1, y1], np.float32)


def _profile(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None) -> dict:
    """The attributes :func:`~deidcli.evaluation.attributes.attribute_errors` compares, and the face's detail."""
    return {"pose": None if landmarks is None else pose(landmarks), "tone": tone(image, box),
            "detail": detail(image, box)}


def evaluate(
    folder: Path,
    detector: FaceDetector,
    recognizers: list[Recognizer],
    methods: Iterable[str],
    strengths: Iterable[float] | Mapping[str, Iterable[float]] | None = None,
    basis: str | None = None,
    far: float = 0.01,
    mask_scale: float = FACE_MASK_SCALE,
    examples: int = 5,
    device: torch.device | str = "cpu",
    on_step: Callable[[str, int], None] | None = None,
    split: str = "all",
    full_sweep: bool = False,
) -> Evaluation:
    """Sweep each of ``methods`` over ``strengths`` (one list for all, or per method; default: its sweep in
    :data:`SWEEPS`, weak to strong) on the photos of ``split``'s people (:mod:`deidcli.evaluation.split`); the
    gallery is those people's originals only.

    Unless ``full_sweep``, a method's sweep ends once :data:`STOP_AFTER` settings in a row protect. After each
    setting ``on_step("method strength", n)`` says how many settings of the planned total are done (more than one
    when a sweep ended early).
    """
    with _dlib_aside(recognizers) or nullcontext() as aside:
        return _sweep(folder, detector, recognizers, methods, strengths, basis, far, mask_scale, examples, device,
                      on_step, split, full_sweep, aside)


def _sweep(folder, detector, recognizers, methods, strengths, basis, far, mask_scale, examples, device, on_step,
           split, full_sweep, aside: Executor | None) -> Evaluation:
    photos, skipped = _load(folder, detector, split)
    ids = np.array([p.identity for _, p in photos])
    clean = _embed_all(recognizers, lambda r: _face_crops(r, [(p.image, p.box) for _, p in photos]), aside)
    baseline = _baseline(recognizers, clean, ids, far)
    profiles = [_profile(p.image, p.box, _found(detector, p.image, p.box)[1]) for _, p in photos]
    thresholds = {name: b["threshold"] for name, b in baseline.items()}
    result = Evaluation(str(folder), len(photos), len(set(ids)), skipped, far, baseline, [], split=split,
                        full_sweep=full_sweep)
    shown = _example_indices(ids, examples)
    result.originals = [box_region(photos[n][1].image, scale_boxes(photos[n][1].box[None], mask_scale)[0]).copy()
                        for n in shown]
    for name in methods:
        method = get_method(name, basis, device)
        sweep = [float(s) for s in sweep_of(name, strengths)]
        streak = 0
        for done, strength in enumerate(sweep, 1):
            setting = _one_setting(photos, ids, method, strength, mask_scale, detector, recognizers, clean,
                                   profiles, thresholds, device, result.examples.setdefault((name, strength), []),
                                   shown, aside)
            result.settings.append(setting)
            streak = streak + 1 if protects(setting) else 0
            stop = not full_sweep and streak >= STOP_AFTER
            if on_step:
                on_step(f"{name} {strength:g}", len(sweep) - done + 1 if stop and done < len(sweep) else 1)
            if stop:
                break
    return result


def _example_indices(ids: np.ndarray, count: int) -> list[int]:
    """The photos the examples show: the first of each person while there are people, then the next ones."""
    first = set(np.unique(ids, return_index=True)[1].tolist())
    order = sorted(range(len(ids)), key=lambda n: (n not in first, n))
    return sorted(order[:count])


def sweep_of(method: str, strengths: Iterable[float] | Mapping[str, Iterable[float]] | None) -> tuple[float, ...]:
    """The strengths to measure ``method`` at: its own entry of a per-method mapping, the one list, or its sweep."""
    if isinstance(strengths, Mapping):
        return tuple(strengths.get(method, SWEEPS.get(method, ())))
    return tuple(strengths) if strengths else SWEEPS[method]


def _load(folder: Path, detector: FaceDetector, split: str) -> tuple[list[tuple[int, Photo]], list[str]]:
    """The photos with a face, each with its index among all of them (which seeds the random methods, so a
    person's anonymized face is the same in a half and in the whole), kept to ``split``; and the names of those
    where the detector found none."""
    photos = load_photos(folder, detector)
    skipped = [str(p.path.name) for p in photos if p.box is None]
    found = [p for p in photos if p.box is not None]
    kept = [(i, p) for (i, p), keep in zip(enumerate(found), in_split([p.identity for p in found], split)) if keep]
    if len(kept) < 3:
        raise NoMediaError(f"{folder}: fewer than 3 photos with a face the detector finds"
                           + ("" if split == "all" else f" in the {split} half"))
    return kept, skipped


def _baseline(recognizers: list[Recognizer], clean: dict[str, np.ndarray], ids: np.ndarray, far: float
              ) -> dict[str, dict[str, float]]:
    """Each recognizer on the originals: the figures a method starts from, the threshold and the analytic chance."""
    baseline = {}
    for r in recognizers:
        e = clean[r.name]
        ranks = identity_ranks(e, ids, e, ids)
        threshold = verification_threshold(e, ids, far)
        baseline[r.name] = {
            "rank1": rank_k_rate(ranks, 1), "rank5": rank_k_rate(ranks, 5), "probes": int(np.isfinite(ranks).sum()),
            "rank1_open": open_set_rate(e, e, ids, r.match_distance),
            "tar": true_accept_rate(e, e, ids, threshold), "threshold": threshold,
            "chance_rank1": chance_rank_k(ids, 1), "chance_rank5": chance_rank_k(ids, 5),
            "findable": int(np.isfinite(ranks).sum()), **_msvdd(r, e, e, ids),
        }
    return baseline


def _one_setting(photos: list[tuple[int, Photo]], ids, method, strength, mask_scale, detector, recognizers, clean,
                 profiles: list[dict], thresholds, device, example_crops: list, shown: list[int],
                 aside: Executor | None = None) -> Setting:
    style = RegionStyle(method, strength, mask_scale=mask_scale)
    q = {"pf": [], "sf": [], "pi": [], "si": []}
    detected = 0
    kept: list[dict] = []
    crops: dict[str, list[torch.Tensor]] = {}  # per network: only its crop of each anonymized photo is kept
    networks = _networks(recognizers)
    for n, (i, p) in enumerate(photos):
        dets = Detections(p.box[None].astype(np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
        anon = anonymize_frame(p.image, dets, style, frame_index=i, device=device)
        region = scale_boxes(p.box[None], mask_scale)[0]
        a, b = box_region(p.image, region), box_region(anon, region)
        q["pf"].append(psnr(a, b))
        q["sf"].append(ssim(a, b))
        mse, whole_ssim = changed_region_quality(p.image, anon, region)
        q["pi"].append(psnr_from_mse(mse))
        q["si"].append(whole_ssim)
        hit, landmarks = _found(detector, anon, p.box)
        detected += hit
        kept.append(_profile(anon, p.box, landmarks))
        for net, r in networks.items():
            crops.setdefault(net, []).append(face_crops(anon, p.box[None], r))
        if n in shown:
            example_crops.append(b.copy())
    anon_embeds = _embed_all(recognizers, lambda r: torch.cat(crops[_network(r)]), aside)
    per_rec = {}
    for r in recognizers:
        e, gallery = anon_embeds[r.name], clean[r.name]
        ranks = identity_ranks(e, ids, gallery, ids)
        per_rec[r.name] = {
            "rank1": rank_k_rate(ranks, 1), "rank5": rank_k_rate(ranks, 5), "probes": int(np.isfinite(ranks).sum()),
            "rank1_open": open_set_rate(e, gallery, ids, r.match_distance),
            "tar": true_accept_rate(e, gallery, ids, thresholds[r.name]),
            **measured_chance(e, gallery, ids, r.match_distance),
            "diversity": diversity(e, gallery),
            **_msvdd(r, e, gallery, ids),
        }
    return Setting(
        method.name, strength, _mean_psnr(q["pf"]), float(np.mean(q["sf"])), _mean_psnr(q["pi"]),
        float(np.mean(q["si"])), detected / len(photos), per_rec,
        detail=detail_ratio([p["detail"] for p in profiles], [k["detail"] for k in kept]),
        attributes=attribute_errors(profiles, kept),
    )


def _network(r: Recognizer) -> str:
    """The network behind a recognizer (M-SVDD scores its base's embeddings)."""
    return r.base.name if isinstance(r, MSVDDRecognizer) else r.name


def _networks(recognizers: list[Recognizer]) -> dict[str, Recognizer]:
    """One recognizer per network, the first named."""
    out: dict[str, Recognizer] = {}
    for r in recognizers:
        out.setdefault(_network(r), r)
    return out


def _embed_all(recognizers: list[Recognizer], crops_of: Callable[[Recognizer], torch.Tensor],
               aside: Executor | None = None) -> dict[str, np.ndarray]:
    """Embeddings ``(N, D)`` of ``crops_of(r)`` for each recognizer by name, once per network (M-SVDD reuses its
    base's embeddings); dlib's in the ``aside`` worker process when there is one (:func:`_dlib_aside`), at the same
    time as the others here."""
    networks = _networks(recognizers)
    pending = {net: aside.submit(_dlib_in_worker, _as_bytes(crops_of(r))) for net, r in networks.items()
               if aside is not None and isinstance(r, DlibRecognizer)}
    by_network = {net: _embed_crops(r, crops_of(r)) for net, r in networks.items() if net not in pending}
    by_network.update({net: job.result() for net, job in pending.items()})
    return {r.name: by_network[_network(r)] for r in recognizers}


def _dlib_aside(recognizers: list[Recognizer]) -> Executor | None:
    """A worker process for dlib's descriptors, when dlib is measured beside another network and there is a core
    for it. dlib holds the GIL for a whole batch (a thread ran no faster), so on 2 cores it needs a process of its
    own to run beside FaceNet: a setting then costs about FaceNet's time or dlib's, not both."""
    networks = _networks(recognizers).values()
    if len(networks) < 2 or (os.cpu_count() or 1) < 2 or not any(isinstance(r, DlibRecognizer) for r in networks):
        return None
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_dlib_worker)


_WORKER: dict[str, DlibRecognizer] = {}  # inside the worker process only: its one dlib model, loaded once


def _start_dlib_worker() -> None:
    _WORKER["dlib"] = DlibRecognizer()


def _dlib_in_worker(crops: torch.Tensor) -> np.ndarray:
    return _embed_crops(_WORKER["dlib"], crops.float() / 255)


def _as_bytes(crops: torch.Tensor) -> torch.Tensor:
    """Crops in ``[0, 1]`` as the 8-bit pixels dlib reads anyway: a quarter of the bytes to send to the worker."""
    return (crops.clamp(0, 1) * 255).round().byte()


def _embed_crops(r: Recognizer, crops: torch.Tensor) -> np.ndarray:
    """``(N, D)`` embeddings of ``crops: (N, 3, size, size)``, :data:`EMBED_BATCH` at a time: a network's forward
    pass over many photos at once (FaceNet on 61 photos: 1.5 s against 2.7 s for 61 passes), with bounded
    memory on large folders."""
    with torch.no_grad():
        return np.concatenate([r.embed(crops[k:k + EMBED_BATCH]).cpu().numpy()
                               for k in range(0, len(crops), EMBED_BATCH)])


def _face_crops(r: Recognizer, faces: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """``r``'s crops ``(N, 3, size, size)`` of the face at ``box: (4,)`` in each ``(image, box)``."""
    return torch.cat([face_crops(image, box[None], r) for image, box in faces])


def _msvdd(rec: Recognizer, probes: np.ndarray, gallery: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """For an M-SVDD recognizer, its own identification figures (they replace the nearest-photo ones)."""
    return msvdd_identification(probes, gallery, ids) if isinstance(rec, MSVDDRecognizer) else {}


def _mean_psnr(values: list[float]) -> float:
    """Mean PSNR over photos from their mean squared error (an unchanged photo would make the mean infinite)."""
    mse = [10 ** (-v / 10) for v in values]
    m = float(np.mean(mse))
    return float("inf") if m == 0 else -10 * math.log10(m)
