"""Make deidcli/detection/data/plate_yolov8n_int8.pt from the safelicensing wheel (``make plate-model``).

The wheel is fetched once, pinned by SHA-256 (deidcli.detection.plates.SAFELICENSING); its ``best.pt`` (YOLOv8n,
one class ``License_Plate``, package licence Apache-2.0) is read without importing ultralytics, batch norm is folded
into the convolutions, the kernels stored as int8 with a scale per output channel, and the result saved as tensors
and plain lists, loadable with ``weights_only=True``. torch.save's bytes differ from run to run; the tensors do not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deidcli.detection.plates import SAFELICENSING, SHIPPED, convert
from deidcli.weights import wheel_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=SHIPPED)
    args = ap.parse_args()
    torch.save(convert(wheel_files(SAFELICENSING)[0]), args.out)
    print(f"{args.out}: made from {SAFELICENSING.wheel} (sha256 {SAFELICENSING.sha256[:12]})")


if __name__ == "__main__":
    main()
