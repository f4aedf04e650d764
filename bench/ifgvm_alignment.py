"""How far `deid run --method ifgvm` moves faces as a recognizer crops them, not only as the attack did.

    python bench/ifgvm_alignment.py [--limit 6] [--max-side 400]

The attack reaches FaceNet distance ``strength`` (1.0, the match distance) on the face square it optimises. A
recognizer cuts its own crop: here deid's own ``cut_face`` around the detector's box (FaceNet's framing, 1.3 box
heights), and that box moved by 2% of its side in each direction and grown and shrunk by 4% (another detector's
box). For each photo of shared/data/identities (largest CenterFace face, longest side --max-side) it prints the
distance in each of these 7 crops, the lowest, and the seconds the face took; then the share of faces whose
lowest distance is at least 1.0 (a face search at FaceNet's threshold misses them in every crop).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deidcli.detection import build_detector
from deidcli.detections import Detections
from deidcli.recognition.recognizer import FaceNetRecognizer, embed_faces
from deidcli.methods import get_method
from deidcli.methods.regions import RegionStyle, anonymize_frame
from deidcli.photos import load_photos

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "identities"
SHIFT, GROW = 0.02, 0.04


def crops_of(box: np.ndarray) -> np.ndarray:
    """``(7, 4)``: the box, shifted by ``SHIFT`` of its side four ways, grown and shrunk by ``GROW``."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    out = [box]
    for dx, dy in ((SHIFT, SHIFT), (-SHIFT, -SHIFT), (SHIFT, -SHIFT), (-SHIFT, SHIFT)):
        out.append(box + np.array([dx * w, dy * h, dx * w, dy * h]))
    for g in (GROW, -GROW):
        out.append(box + np.array([-g * w / 2, -g * h / 2, g * w / 2, g * h / 2]))
    return np.array(out, dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=SHARED)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--max-side", type=int, default=400)
    args = ap.parse_args()
    centerface = build_detector("centerface", None, "cpu")
    rec = FaceNetRecognizer()
    method = get_method("ifgvm")
    photos = [p for p in load_photos(args.folder, centerface, max_side=args.max_side) if p.box is not None]
    rows = []
    for p in photos[:: max(1, len(photos) // args.limit)][: args.limit]:
        dets = Detections(p.box[None].astype(np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
        t0 = time.perf_counter()
        out = anonymize_frame(p.image, dets, RegionStyle(method))
        seconds = time.perf_counter() - t0
        boxes = crops_of(p.box)
        d = np.linalg.norm(embed_faces(rec, out, boxes) - embed_faces(rec, p.image, boxes), axis=1)
        row = {"photo": p.path.name, "face_px": int(p.box[3] - p.box[1]), "distances": d.round(3).tolist(),
               "lowest": round(float(d.min()), 3), "max_change": int(np.abs(out.astype(int) - p.image).max()),
               "seconds": round(seconds, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({
        "faces": len(rows),
        "lowest_at_least_1": sum(r["lowest"] >= 1.0 for r in rows) / len(rows),
        "box_at_least_1": sum(r["distances"][0] >= 1.0 for r in rows) / len(rows),
        "median_lowest": float(np.median([r["lowest"] for r in rows])),
        "seconds_per_face": round(float(np.mean([r["seconds"] for r in rows])), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
