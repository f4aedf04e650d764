"""Face de-detection as `deid run --method dedetect` does it: whole photos, MTCNN checked on the whole image.

    python bench/dedetect_frames.py [--folder DIR] [--limit 12] [--max-side 512]

For each photo (longest side scaled to --max-side, as a video frame would be), the largest CenterFace face is
de-detected against MTCNN. Prints, per photo and overall: whether MTCNN still finds the face in the whole image,
whether CenterFace (the default detector, never attacked) does, whether MTCNN finds it again after a JPEG quality
95 re-encode (the attack checks that JPEG too, unless --raw), the face region's PSNR, the budget reached and the
seconds it took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from deidcli.detection import build_detector
from deidcli.detection.mtcnn import MTCNNDetector
from deidcli.detections import Detections, box_iou
from deidcli.evaluation.quality import box_region, psnr
from deidcli.image_io import jpeg_round_trip
from deidcli.methods import get_method
from deidcli.methods.regions import RegionStyle, anonymize_frame, scale_boxes
from deidcli.photos import load_photos

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "identities"


def jpeg(image: np.ndarray) -> np.ndarray:
    """A JPEG at quality 95 with PIL's default 4:2:0 chroma: the photo as a site that re-encodes it keeps it."""
    return jpeg_round_trip(image, quality=95, subsampling=2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", type=Path, default=SHARED)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--raw", action="store_true", help="hide the face in the 8-bit frame only, not in its JPEG too")
    args = ap.parse_args()
    centerface = build_detector("centerface", None, "cpu")
    mtcnn = MTCNNDetector()
    method = get_method("dedetect")
    photos = [p for p in load_photos(args.folder, centerface, max_side=args.max_side) if p.box is not None]
    rows = []
    for p in photos[:: max(1, len(photos) // args.limit)][: args.limit]:
        if not mtcnn.finds(p.image, p.box):
            continue  # nothing to hide from
        t0 = time.perf_counter()
        dets = Detections(p.box[None].astype(np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
        out = anonymize_frame(p.image, dets, RegionStyle(method), coding=None if args.raw else jpeg)
        seconds = time.perf_counter() - t0
        cf = centerface.detect(out, 1.0)
        region = scale_boxes(p.box[None], 1.2)[0]
        row = {
            "photo": p.path.name, "size": list(p.image.shape[:2]), "face_px": int(p.box[3] - p.box[1]),
            "mtcnn_finds": mtcnn.finds(out, p.box),
            "centerface_finds": bool(len(cf)) and bool((box_iou(cf.xyxy, p.box[None]) >= 0.3).any()),
            "mtcnn_finds_after_jpeg95": mtcnn.finds(jpeg(out), p.box),
            "max_change": int(np.abs(out.astype(int) - p.image).max()),
            "psnr_face": round(psnr(box_region(p.image, region), box_region(out, region)), 2),
            "seconds": round(seconds, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    n = len(rows)
    summary = {
        "photos": n,
        "mtcnn_finds": sum(r["mtcnn_finds"] for r in rows) / n,
        "frosted_instead": sum(r["max_change"] > 20 for r in rows) / n,
        "centerface_finds": sum(r["centerface_finds"] for r in rows) / n,
        "mtcnn_finds_after_jpeg95": sum(r["mtcnn_finds_after_jpeg95"] for r in rows) / n,
        "psnr_face_mean": round(float(np.mean([r["psnr_face"] for r in rows])), 2),
        "seconds_per_photo": round(float(np.mean([r["seconds"] for r in rows])), 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
