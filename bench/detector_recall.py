"""`make recall`: face detector recall against face height, on shared/data/faces_annotated shrunk to 1/2, 1/4, 1/8.

Each labelled face is bucketed by its height after shrinking; a face counts as found at IoU 0.3. Inference at
scale 1 is the detector on the photo's own pixels ("full resolution"); scale 2 is what `--tile-scale 2` does to
every tile of a large frame.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from deidcli.detection import build_detector
from deidcli.evaluation.recall import load_boxes, matched

FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces_annotated"
BINS = [(0, 8), (8, 12), (12, 16), (16, 24), (24, 32), (32, 48), (48, 10_000)]


def per_face(detector, folder: Path, downscale: float, scale: float) -> list[tuple[float, bool]]:
    out = []
    for name, gt in load_boxes(folder / "boxes.csv").items():
        img = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (round(img.shape[1] * downscale), round(img.shape[0] * downscale)),
                         interpolation=cv2.INTER_AREA)
        gt = gt * downscale
        dets = detector.detect(img, scale)
        for box in gt:
            out.append((float(box[3] - box[1]), matched(box[None], dets.xyxy, 0.3) == 1))
    return out


def main() -> None:
    if not FOLDER.exists():
        sys.exit(f"needs {FOLDER}")
    for name in ("centerface", "mtcnn"):
        det = build_detector(name)
        for scale in (1.0, 2.0):
            faces = []
            print(f"\n{name}, inference scale {scale:g}")
            for ds in (1.0, 0.5, 0.25, 0.125):
                res = per_face(det, FOLDER, ds, scale)
                faces += res
                found = sum(f for _, f in res)
                med = np.median([h for h, _ in res])
                print(f"  photos at 1/{round(1 / ds)}: {found}/{len(res)} = {found / len(res):.2f}  (median face {med:.0f} px)")
            rows, smallest = [], None
            for lo, hi in BINS:
                got = [f for h, f in faces if lo <= h < hi]
                if got:
                    r = sum(got) / len(got)
                    rows.append(f"{lo}-{hi if hi < 10_000 else ''} px: {r:.2f} (n={len(got)})")
            for lo, hi in sorted(BINS, reverse=True):  # walk down from the largest faces
                got = [f for h, f in faces if lo <= h < hi]
                if got and sum(got) / len(got) < 0.9:
                    break
                if got:
                    smallest = lo
            print("  by face height: " + "; ".join(rows))
            print(f"  recall >= 0.9 in every height bin down to faces of {smallest} px")


if __name__ == "__main__":
    main()
