"""The adversarial methods measured on photos of known people (`deid evaluate --adversarial`, `--kanon K`).

Faces are cut at the white-box recognizer's crop (160 x 160 for FaceNet) and attacked as a batch. The recognizer
then identifies each attacked face against the *other* originals (closed set, as the rest of `deid evaluate`), and
the closed-set classifier the attack used (cosine to each person's mean embedding) reports target hits and ranks.
Transfer: the change is pasted back into the photo and dlib, which the attack never saw, identifies it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from deidcli.errors import ConfigError, NoMediaError
from deidcli.evaluation.identification import identity_ranks, open_set_rate, rank_k_rate
from deidcli.evaluation.kanon_test import k_anonymity_rank_test
from deidcli.evaluation.msvdd import MSVDD
from deidcli.evaluation.recognizer import Recognizer, embed_faces, face_crops
from deidcli.methods import adversarial as adv
from deidcli.methods.eigenfaces import resize
from deidcli.photos import Photo


@dataclass
class Faces:
    """The photos' faces as the white-box recognizer sees them."""

    photos: list[Photo]
    ids: np.ndarray  # (N,) person per photo
    crops: torch.Tensor  # (N, 3, S, S)
    clean: np.ndarray  # (N, D) embeddings of the originals
    classes: np.ndarray  # (C,) person ids, the classifier's classes
    labels: torch.Tensor  # (N,) class index of each photo

    @classmethod
    def of(cls, photos: list[Photo], rec: Recognizer) -> "Faces":
        photos = [p for p in photos if p.box is not None]
        ids = np.array([p.identity for p in photos])
        crops = torch.cat([face_crops(p.image, p.box[None], rec) for p in photos])
        with torch.no_grad():
            clean = rec.embed(crops).cpu().numpy()
        classes = np.unique(ids)
        if len(classes) < 2:
            raise NoMediaError("the adversarial evaluation needs photos of at least 2 people")
        labels = torch.tensor([int(np.nonzero(classes == i)[0][0]) for i in ids])
        return cls(photos, ids, crops, clean, classes, labels)

    def templates(self) -> torch.Tensor:
        """Each person's mean embedding ``(C, D)``: the classifier the attacks aim at."""
        return torch.stack([torch.from_numpy(self.clean[self.ids == c].mean(0)) for c in self.classes])


def psnr_batch(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return (10 * torch.log10(1 / mse)).cpu().numpy()


def paste_back(photo: Photo, crop: torch.Tensor, attacked: torch.Tensor, rec: Recognizer) -> np.ndarray:
    """The photo with the attack's change (resampled to the face square) added: what another recognizer sees."""
    img = photo.image.astype(np.float32) / 255
    x1, y1, x2, y2 = photo.box
    side = rec.framing * (y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = img.shape[:2]
    sx0, sy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = int(round(side))
    delta = resize((attacked - crop)[None].float(), n, n)[0].permute(1, 2, 0).numpy()
    ya, yb, xa, xb = max(0, sy0), min(h, sy0 + n), max(0, sx0), min(w, sx0 + n)
    img[ya:yb, xa:xb] += delta[ya - sy0:yb - sy0, xa - sx0:xb - sx0]
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def identification(faces: Faces, embeddings: np.ndarray, match_distance: float) -> dict:
    ranks = identity_ranks(embeddings, faces.ids, faces.clean, faces.ids)
    return {"rank1": rank_k_rate(ranks, 1), "rank5": rank_k_rate(ranks, 5),
            "rank1_open": open_set_rate(embeddings, faces.clean, faces.ids, match_distance)}


def transfer(faces: Faces, attacked: torch.Tensor, white: Recognizer, black: Recognizer) -> dict:
    """``black``'s identification of the attacked faces pasted back into their photos, and of the originals."""
    anon = [paste_back(p, faces.crops[i], attacked[i], white) for i, p in enumerate(faces.photos)]
    e_clean = np.concatenate([embed_faces(black, p.image, p.box[None]) for p in faces.photos])
    e_anon = np.concatenate([embed_faces(black, a, p.box[None]) for a, p in zip(anon, faces.photos)])
    ranks = identity_ranks(e_anon, faces.ids, e_clean, faces.ids)
    return {"rank1": rank_k_rate(ranks, 1), "rank1_open": open_set_rate(e_anon, e_clean, faces.ids,
                                                                         black.match_distance)}


def msvdd_report(faces: Faces, attacked_embeddings: np.ndarray) -> dict:
    """How many attacked faces M-SVDD rejects, and how many clean faces it wrongly rejects (each clean photo scored
    against spheres fitted without it)."""
    model = MSVDD.fit(faces.clean, faces.ids)
    who, accepted = model.predict(attacked_embeddings)
    clean_rejected = 0
    for i in range(len(faces.ids)):
        keep = np.arange(len(faces.ids)) != i
        _, ok = MSVDD.fit(faces.clean[keep], faces.ids[keep]).predict(faces.clean[i:i + 1])
        clean_rejected += int(not ok[0])
    return {
        "adversarial_rejected": float((~accepted).mean()),
        "adversarial_accepted_as_true": float((accepted & (who == faces.ids)).mean()),
        "adversarial_accepted_as_other": float((accepted & (who != faces.ids)).mean()),
        "clean_wrongly_rejected": clean_rejected / len(faces.ids),
    }


def run_attack(faces: Faces, rec: Recognizer, kind: str, steps: int = 50, alpha: float = 1 / 255,
               eps: float | None = 6 / 255, kappa: float = 0.9, k: int = 5, positions: int | None = None,
               seed: int = 0, detector=None) -> tuple[torch.Tensor, dict]:
    """One attack on every face: the attacked crops and what it achieved by its own measure."""
    logits = adv.class_logits(rec.embed, faces.templates())
    x, y = faces.crops, faces.labels
    t0 = time.perf_counter()
    extra: dict = {}
    if kind == "ifgvm":
        r = adv.ifgvm_classes(x, logits, y, None, kappa=kappa, steps=steps, alpha=alpha, eps=eps)
    elif kind == "ifgvm-targeted":
        target = (y + 1 + torch.arange(len(y)) % (len(faces.classes) - 1)) % len(faces.classes)  # never the true
        r = adv.ifgvm_classes(x, logits, y, target, kappa=kappa, steps=steps, alpha=alpha, eps=eps)
        with torch.no_grad():
            extra["target_hit"] = float((logits(r.x).argmax(1) == target).float().mean())
    elif kind == "kanon":
        big_k = positions or k + 1
        rank = adv.balanced_ranks(len(y), big_k, torch.Generator().manual_seed(seed))
        r = adv.kanon_attack(x, logits, y, rank, big_k, steps=steps, alpha=alpha, eps=eps)
        with torch.no_grad():
            ranks = adv.true_rank(logits(r.x), y).numpy()
        test = k_anonymity_rank_test(ranks, len(faces.classes), k)
        extra["rank_test"] = {"passed": test["passed"], "n": test["n"], "k": k, "positions": big_k,
                              "max_upper": test["max_upper"], "p_hat": test["p_hat"].round(4).tolist()}
        extra["rank_hit"] = float((ranks == rank.numpy()).mean())
    elif kind == "dedetect":
        face = torch.ones((len(x), 1, *x.shape[-2:]))

        def detected(a: torch.Tensor) -> torch.Tensor:
            return torch.tensor([len(detector.detect(_u8(c), 1.0)) > 0 for c in a])

        r = adv.dedetect(x, detector.proposal_scores, detected, 0.6, margin=0.1, region=face, steps=steps,
                         alpha=alpha, eps=eps)
        extra["detected"] = float(detected(r.x).float().mean())
        extra["detected_clean"] = float(detected(x).float().mean())
    else:
        raise ValueError(f"unknown attack {kind!r}")
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        e = rec.embed(r.x).cpu().numpy()
    psnr = psnr_batch(x, r.x)
    out = {"attack": kind, "faces": len(x), "steps_mean": float(r.steps.float().mean()),
           "success": float(r.success.float().mean()), "psnr_mean": float(psnr.mean()), "psnr_min": float(psnr.min()),
           "linf_max": float((r.x - x).abs().max()), "seconds": round(seconds, 2),
           "crop_steps_per_s": round(float(r.steps.sum()) / seconds, 2) if seconds else None,
           "white_box": identification(faces, e, rec.match_distance), "msvdd": msvdd_report(faces, e), **extra}
    return r.x, out


def _u8(crop: torch.Tensor) -> np.ndarray:
    return (crop.detach().permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


ATTACKS = ("ifgvm", "ifgvm-targeted", "kanon", "dedetect")


def evaluate_attacks(folder, kinds: list[str], facenet_weights=None, steps: int = 50, eps: float = 6 / 255,
                     k: int = 5, device: str = "cpu", output=None) -> dict:
    """Every attack in ``kinds`` on the faces of ``folder``; the figures as a dict (and ``output/attacks.json``)."""
    import json
    from pathlib import Path

    from deidcli.detection import build_detector
    from deidcli.detection.mtcnn import MTCNNDetector
    from deidcli.evaluation.recognizer import DlibRecognizer, build_recognizer
    from deidcli.photos import load_photos

    bad = [a for a in kinds if a not in ATTACKS]
    if bad:
        raise ConfigError(f"unknown attack {bad[0]!r}; choose from {', '.join(ATTACKS)}")
    white = build_recognizer("facenet", facenet_weights, device)
    black = DlibRecognizer()
    faces = Faces.of(load_photos(Path(folder), build_detector("centerface", None, "cpu")), white)
    with torch.no_grad():
        base = identification(faces, faces.clean, white.match_distance)
    report = {"faces": len(faces.ids), "people": len(faces.classes), "white_box": white.name,
              "baseline": {"white_box": base, "transfer": transfer(faces, faces.crops, white, black)},
              "steps": steps, "eps": eps, "attacks": {}}
    detector = MTCNNDetector() if "dedetect" in kinds else None
    for kind in kinds:
        attacked, out = run_attack(faces, white, kind, steps=steps, eps=eps, k=k, detector=detector)
        out["transfer"] = transfer(faces, attacked, white, black)
        report["attacks"][kind] = out
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / "attacks.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
