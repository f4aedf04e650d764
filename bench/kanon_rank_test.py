"""k-anonymity attack on shared identities, augmented, and the rank test of methods.md 12.1; plus I-FGVM speed.

    python bench/kanon_rank_test.py [--k 5] [--positions 10] [--steps 60]

Each face is used as cut, mirrored, and shifted by 6% of the crop: three probes per photo. The attack spreads the
true person over ranks 2..positions+1; the test passes when every rank's Clopper-Pearson upper bound is below 1/k.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from deidcli.detection import build_detector
from deidcli.evaluation.adversarial_eval import Faces
from deidcli.evaluation.kanon_test import k_anonymity_rank_test
from deidcli.recognition.recognizer import FaceNetRecognizer
from deidcli.methods import adversarial as adv
from deidcli.photos import load_photos

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "identities"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--positions", type=int, default=10)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    rec = FaceNetRecognizer()
    faces = Faces.of(load_photos(SHARED, build_detector("centerface", None, "cpu")), rec)
    logits = adv.class_logits(rec.embed, faces.templates())
    x = faces.crops
    s = int(0.06 * x.shape[-1])
    shifted = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")[..., : x.shape[-2], 2 * s:]
    probes = torch.cat([x, x.flip(-1), shifted])
    true = faces.labels.repeat(3)

    t = time.perf_counter()  # speed: 10 iterations of I-FGVM on 16 crops, no early stop
    adv.ifgvm_classes(x[:16], logits, faces.labels[:16], None, kappa=2.0, steps=10)
    speed = 16 / (time.perf_counter() - t)
    print(f"ifgvm, 10 iterations: {speed:.2f} crops/s on this CPU ({torch.get_num_threads()} threads)", flush=True)

    rank = adv.balanced_ranks(len(probes), args.positions, torch.Generator().manual_seed(0))
    t = time.perf_counter()
    r = adv.kanon_attack(probes, logits, true, rank, args.positions, steps=args.steps, eps=6 / 255)
    with torch.no_grad():
        ranks = adv.true_rank(logits(r.x), true).numpy()
    test = k_anonymity_rank_test(ranks, len(faces.classes), args.k)
    mse = (r.x - probes).pow(2).flatten(1).mean(1)
    print(json.dumps({
        "probes": len(probes), "k": args.k, "positions": args.positions, "passed": test["passed"],
        "max_upper": round(test["max_upper"], 4), "p_hat": test["p_hat"].round(4).tolist(),
        "rank_hit": float((ranks == rank.numpy()).mean()), "psnr_mean": float((10 * torch.log10(1 / mse)).mean()),
        "seconds": round(time.perf_counter() - t, 1), "ifgvm_10_iter_crops_per_s": round(speed, 2),
    }, indent=1))


if __name__ == "__main__":
    main()
