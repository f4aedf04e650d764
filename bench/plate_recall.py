"""Plate recall as `deid run` detects plates (tiles included), for `make recall`.

- shared/data/plates: 114 EU and Brazilian plates, one box each (IoU 0.3);
- the fisheye clip's 10 readable plates (frames 0, 8, 16, 22, 23; deidcli/evaluation/plate_recall.py).

Rows: the default (the shipped safelicensing network) and, where it can be fetched, with platedet (AGPL-3.0, opt-in).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deidcli.anonymizer import FrameAnonymizer
from deidcli.config import DeidConfig
from deidcli.errors import ModelUnavailableError
from deidcli.evaluation.plate_recall import FISHEYE_PLATES, FISHEYE_VIDEO, fisheye_found, photos_found

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--model", action="append", help="a --plate-model value (repeat); default: deid's and with platedet")
    args = ap.parse_args()
    if not (args.data / "plates").is_dir():
        sys.exit(f"no {args.data / 'plates'}: plate recall needs ../shared/data")
    for model in args.model or [DeidConfig().plate_model, "safelicensing,platedet"]:
        try:
            det = FrameAnonymizer.from_config(DeidConfig().with_overrides(targets="plate", plate_model=model))
        except ModelUnavailableError as exc:
            print(f"plates {model}: not measured ({exc})")
            continue
        found, total = photos_found(det.detectors["plate"], args.data / "plates")
        fish = fisheye_found(det.detectors["plate"], args.data / "videos" / FISHEYE_VIDEO)
        print(f"plates {model}: {found}/{total} photos, {fish}/{sum(map(len, FISHEYE_PLATES.values()))} "
              f"fisheye plates (IoU 0.3)")


if __name__ == "__main__":
    main()
