"""Measure each method's protective default and write deidcli/methods/data/protective_defaults.json (`make defaults`).

For every method of deid evaluate's sweeps: on the *tune* half of the people (deidcli.evaluation.split), the weakest
strength of its sweep that protects by deid evaluate's rule (closed-set rank-1 not significantly above that
setting's measured chance and open-set rank-1 below 5%, for dlib and FaceNet alike); then the same strength on the
held-out *confirm* half, whose people were never seen while tuning. The default is the weakest strength that
passes on both halves as every stronger one of the sweep does. A method where none passes gets no default (null)
and a note.

    python scripts/measure_defaults.py [--identities ../shared/data/identities] [--methods frost,blur] [-o FILE]

Each half is swept in full (no early stop) so the choice can move to a stronger strength: 12 minutes on 2
cores. The registry's default_strength values are set by hand from the file (tests check they agree).
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
    chance_p_value,
    evaluate,
    protect_summary,
    protects,
)
from deidcli.recognition.recognizer import build_recognizer
from deidcli.evaluation.split import split_identities
from deidcli.methods import METHODS
from deidcli.methods.registry import PROTECTIVE_DEFAULTS
from deidcli.photos import photo_files

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IDENTITIES = ROOT.parent / "shared" / "data" / "identities"


FIGURES = ("rank1", "chance_rank1", "p_chance", "rank1_open")
COLUMNS = ["strength", "protects", "detected", "psnr_face",
           *(f"{r} {k}" for r in PROTECT_RECOGNIZERS for k in FIGURES)]


def choose(sweep: list[float], tune: Evaluation, confirm: Evaluation, method: str) -> dict:
    """The measured default of ``method``: the first strength of ``sweep`` (weak to strong) that protects on the
    tune half and on the confirm half, *and every stronger one of the sweep too* (a weak strength that passes by
    the luck of a few faces while a stronger one fails is not a default), with both halves' figures there, and
    each half's figures at every strength (one row of :data:`COLUMNS` per strength)."""
    on_tune = {s.strength: s for s in tune.settings if s.method == method}
    on_confirm = {s.strength: s for s in confirm.settings if s.method == method}
    weakest_tune = next((x for x in sweep if x in on_tune and protects(on_tune[x])), None)
    entry: dict = {"default": None, "stronger_is": METHODS[method].stronger_is, "weakest_on_tune": weakest_tune}
    passes = [x in on_tune and x in on_confirm and protects(on_tune[x]) and protects(on_confirm[x]) for x in sweep]
    both = next((x for i, x in enumerate(sweep) if all(passes[i:])), None)
    if both is not None:
        entry.update(default=both, tune=protect_summary(on_tune[both]), confirm=protect_summary(on_confirm[both]))
        if both != weakest_tune:
            i = sweep.index(weakest_tune)
            failing = next(x for x, ok in zip(sweep[i:], passes[i:]) if not ok)
            entry["note"] = (f"{weakest_tune:g} protected the tune half but not the confirm half"
                             if failing == weakest_tune
                             else f"{weakest_tune:g} protected both halves, the stronger {failing:g} did not")
    else:
        both_halves = [x for x, ok in zip(sweep, passes) if ok]
        # the strongest that passed both halves is followed by one that did not (else it would be the default)
        stronger = sweep[sweep.index(both_halves[-1]) + 1] if both_halves else None
        entry["note"] = ("no strength of the sweep protects the tune half" if weakest_tune is None else
                         "no strength of the sweep protects both halves" if not both_halves else
                         f"{both_halves[-1]:g} protected both halves, the stronger {stronger:g} did not")
    entry["sweep"] = {half: [_row(settings[x]) for x in sweep if x in settings]
                      for half, settings in (("tune", on_tune), ("confirm", on_confirm))}
    return entry


def _row(s: Setting) -> list:
    """One setting as a row of :data:`COLUMNS`, rates rounded to 4 decimals."""
    figs = []
    for r in PROTECT_RECOGNIZERS:
        f = s.recognizers[r]
        p = chance_p_value(f["rank1"], f["chance_rank1"], f["probes"])
        figs += [round(f["rank1"], 4), round(f["chance_rank1"], 4), round(p, 4), round(f["rank1_open"], 4)]
    psnr = round(s.psnr_face, 2) if math.isfinite(s.psnr_face) else None
    return [s.strength, protects(s), round(s.detected, 4), psnr, *figs]


def _dumps(record: dict) -> str:
    """JSON with one line per list of numbers or names (a sweep row, the people of a half), so it reads as a table."""
    text = json.dumps(record, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def _earlier(path: Path, record: dict) -> tuple[dict, dict]:
    """The entries of ``path`` for methods this run did not measure, when it was measured by the same rule, region
    and halves (else nothing: figures by another rule do not mix), and the command and minutes of that run."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, {}
    if any(old.get(k) != record[k] for k in ("rule", "region")) or \
            {h: v["people"] for h, v in old.get("halves", {}).items()} != \
            {h: v["people"] for h, v in record["halves"].items()}:
        return {}, {}
    kept = {m: e for m, e in old.get("methods", {}).items() if m not in record["methods"] and m in METHODS}
    how = old.get("kept_from_earlier") or {"command": old.get("command"), "minutes": old.get("minutes")}
    return kept, {"command": how.get("command"), "minutes": how.get("minutes")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=Path, default=DEFAULT_IDENTITIES)
    parser.add_argument("--methods", default=",".join(SWEEPS), help="comma list (default: every method in SWEEPS)")
    parser.add_argument("--mask-scale", type=float, default=DeidConfig.mask_scale,
                        help="the region deid run covers, times the detector's box (default: deid run's)")
    parser.add_argument("-o", "--output", type=Path, default=PROTECTIVE_DEFAULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as deid evaluate: small batched work, cores shared
    from deidcli.methods.registry import unavailable

    methods = []
    for m in (m for m in args.methods.split(",") if m):
        if why := unavailable(m):
            print(f"skipping {m}: {why}", file=sys.stderr)
        else:
            methods.append(m)
    detector = build_detector("centerface", None, "cpu")
    recognizers = [build_recognizer("dlib"), build_recognizer("facenet")]
    t0 = time.perf_counter()
    halves = {}
    for split in ("tune", "confirm"):
        halves[split] = evaluate(args.identities, detector, recognizers, methods, mask_scale=args.mask_scale,
                                 split=split, full_sweep=True,
                                 on_step=lambda label, n, split=split: print(f"{split} {label}", file=sys.stderr))
    people = split_identities(i for i, _ in photo_files(args.identities))
    folder = os.path.relpath(args.identities, ROOT)
    record = {  # the command names what the figures depend on (not where they were written)
        "command": f"python scripts/measure_defaults.py --identities {folder}"
                   + ("" if methods == list(SWEEPS) else f" --methods {','.join(methods)}")
                   + ("" if args.mask_scale == DeidConfig.mask_scale else f" --mask-scale {args.mask_scale:g}"),
        "identities": folder,
        "rule": PROTECT_RULE,
        "region": f"deid run's: an {DeidConfig.mask_shape} {args.mask_scale:g} times the detector's box; the "
                  "recognizers cut their own crop around the original box",
        "choice": "the weakest strength of the sweep that protects the tune half and the confirm half, as every "
                  "stronger strength of the sweep does",
        "columns": COLUMNS,
        "halves": {h: {"people": sorted(p for p, half in people.items() if half == h), "photos": halves[h].photos,
                       "chance_1_in_people": halves[h].baseline["dlib"]["chance_rank1"]} for h in halves},
        "minutes": round((time.perf_counter() - t0) / 60, 1),
        "methods": {m: choose([float(x) for x in SWEEPS[m]], halves["tune"], halves["confirm"], m) for m in methods},
    }
    earlier, how = _earlier(args.output, record)
    if earlier:  # methods measured before and not this time (their models absent, or left out) keep their entries
        record["methods"] = {m: record["methods"].get(m) or earlier[m] for m in (*earlier, *record["methods"])}
        record["kept_from_earlier"] = {"methods": sorted(earlier), **how}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(_dumps(record) + "\n")
    for m, e in record["methods"].items():
        print(f"{m:12s} {'never' if e['default'] is None else format(e['default'], 'g'):>6s}  {e.get('note', '')}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
