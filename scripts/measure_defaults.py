"""Measure each method's protective default and write deidcli/methods/data/protective_defaults.json (`make defaults`).

For every method of deid evaluate's sweeps: on the *tune* half of the people (deidcli.evaluation.split), the weakest
strength of its sweep that protects by deid evaluate's rule (closed-set rank-1 no better than that setting's
measured chance and open-set rank-1 below 5%, for dlib and FaceNet alike); then the same strength on the held-out
*confirm* half, whose people were never seen while tuning. Where it fails there, the next stronger strength that
passes on both halves is taken. A method where none passes gets no default (null) and a note.

    python scripts/measure_defaults.py [--identities ../shared/data/identities] [--methods frost,blur] [-o FILE]

Each half is swept in full (no early stop) so the choice can move to a stronger strength: 9 minutes on 2 cores. The registry's default_strength values are set by hand from the file (tests check they agree).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import torch

from deidcli.config import DeidConfig
from deidcli.detection import build_detector
from deidcli.evaluation.evaluate import (
    PROTECT_RECOGNIZERS,
    PROTECT_RULE,
    SWEEPS,
    Evaluation,
    Setting,
    evaluate,
    protect_summary,
    protects,
)
from deidcli.evaluation.recognizer import build_recognizer
from deidcli.evaluation.split import split_identities
from deidcli.methods import METHODS
from deidcli.methods.registry import PROTECTIVE_DEFAULTS
from deidcli.photos import photo_files

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IDENTITIES = ROOT.parent / "shared" / "data" / "identities"


COLUMNS = ["strength", "protects", "detected", "psnr_face", "dlib rank1", "dlib chance_rank1", "dlib rank1_open",
           "facenet rank1", "facenet chance_rank1", "facenet rank1_open"]


def choose(sweep: list[float], tune: Evaluation, confirm: Evaluation, method: str) -> dict:
    """The measured default of ``method``: the first strength of ``sweep`` (weak to strong) that protects on the
    tune half and on the confirm half, with both halves' figures there, and each half's figures at every strength
    (one row of :data:`COLUMNS` per strength)."""
    on_tune = {s.strength: s for s in tune.settings if s.method == method}
    on_confirm = {s.strength: s for s in confirm.settings if s.method == method}
    weakest_tune = next((x for x in sweep if x in on_tune and protects(on_tune[x])), None)
    entry: dict = {"default": None, "stronger_is": METHODS[method].stronger_is, "weakest_on_tune": weakest_tune}
    both = next((x for x in sweep if x in on_tune and x in on_confirm and protects(on_tune[x])
                 and protects(on_confirm[x])), None)
    if both is not None:
        entry.update(default=both, tune=protect_summary(on_tune[both]), confirm=protect_summary(on_confirm[both]))
        if both != weakest_tune:
            entry["note"] = f"{weakest_tune:g} protected the tune half but not the confirm half"
    else:
        entry["note"] = ("no strength of the sweep protects the tune half" if weakest_tune is None else
                         "no strength of the sweep protects both halves")
    entry["sweep"] = {half: [_row(settings[x]) for x in sweep if x in settings]
                      for half, settings in (("tune", on_tune), ("confirm", on_confirm))}
    return entry


def _row(s: Setting) -> list:
    """One setting as a row of :data:`COLUMNS`, rates rounded to 4 decimals."""
    figs = [round(s.recognizers[r][k], 4) for r in PROTECT_RECOGNIZERS for k in ("rank1", "chance_rank1", "rank1_open")]
    psnr = round(s.psnr_face, 2) if math.isfinite(s.psnr_face) else None
    return [s.strength, protects(s), round(s.detected, 4), psnr, *figs]


def _dumps(record: dict) -> str:
    """JSON with one line per list of numbers or names (a sweep row, the people of a half), so it reads as a table."""
    text = json.dumps(record, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=Path, default=DEFAULT_IDENTITIES)
    parser.add_argument("--methods", default=",".join(SWEEPS), help="comma list (default: every method in SWEEPS)")
    parser.add_argument("-o", "--output", type=Path, default=PROTECTIVE_DEFAULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as deid evaluate: small batched work, cores shared
    methods = [m for m in args.methods.split(",") if m]
    detector = build_detector("centerface", None, "cpu")
    recognizers = [build_recognizer("dlib"), build_recognizer("facenet")]
    t0 = time.perf_counter()
    halves = {}
    for split in ("tune", "confirm"):
        halves[split] = evaluate(args.identities, detector, recognizers, methods, mask_scale=DeidConfig.mask_scale,
                                 split=split, full_sweep=True,
                                 on_step=lambda label, n, split=split: print(f"{split} {label}", file=sys.stderr))
    people = split_identities(i for i, _ in photo_files(args.identities))
    folder = os.path.relpath(args.identities, ROOT)
    record = {  # the command names what the figures depend on (not where they were written)
        "command": f"python scripts/measure_defaults.py --identities {folder}"
                   + ("" if methods == list(SWEEPS) else f" --methods {','.join(methods)}"),
        "identities": folder,
        "rule": PROTECT_RULE,
        "region": f"deid run's: an {DeidConfig.mask_shape} {DeidConfig.mask_scale:g} times the detector's box; the "
                  "recognizers cut their own crop around the original box",
        "choice": "the weakest strength of the sweep that protects the tune half and then the confirm half",
        "columns": COLUMNS,
        "halves": {h: {"people": sorted(p for p, half in people.items() if half == h), "photos": halves[h].photos,
                       "chance_1_in_people": halves[h].baseline["dlib"]["chance_rank1"]} for h in halves},
        "minutes": round((time.perf_counter() - t0) / 60, 1),
        "methods": {m: choose([float(x) for x in SWEEPS[m]], halves["tune"], halves["confirm"], m) for m in methods},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(_dumps(record) + "\n")
    for m, e in record["methods"].items():
        print(f"{m:12s} {'never' if e['default'] is None else format(e['default'], 'g'):>6s}  {e.get('note', '')}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
