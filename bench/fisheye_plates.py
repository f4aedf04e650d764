"""Plates on the fisheye frames (frames 0, 8, 16, 22, 23 of shared/data/videos/fisheye_plates_2560x1920.mp4):
what the plate target finds with its defaults (tiles on frames over 1920 px), per model, and a contact sheet of
every box for counting by eye.

    python bench/fisheye_plates.py [--model safelicensing --model platedet --model safelicensing,platedet]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from deidcli.config import DeidConfig
from deidcli.detection.ensemble import EnsembleDetector
from deidcli.detection.tiling import TiledDetector, tile_grid
from deidcli.detection.plates import PLATE_MODELS, PlateDetector
from deidcli.detection.yolo import YoloDetector
from deidcli.video import VideoReader

FRAMES = (0, 8, 16, 22, 23)
VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "fisheye_plates_2560x1920.mp4"


def frames(path: Path) -> dict[int, np.ndarray]:
    out = {}
    for f in VideoReader(path).frames():
        if f.index in FRAMES:
            out[f.index] = f.image
        if f.index >= max(FRAMES):
            break
    return out


def sheet(images: dict[int, np.ndarray], boxes: dict[int, np.ndarray], side: int = 160) -> np.ndarray:
    """One row per frame: each box's crop (with 30% context), numbered."""
    rows = []
    for i, img in images.items():
        tiles = []
        for n, (x1, y1, x2, y2) in enumerate(boxes[i].astype(int)):
            pad = int(0.3 * max(x2 - x1, y2 - y1))
            crop = img[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad]
            tile = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, f"{i}.{n}", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2)
            tiles.append(tile)
        label = np.zeros((side, 60, 3), np.uint8)
        cv2.putText(label, str(i), (8, side // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        rows.append(np.concatenate([label, *tiles], axis=1) if tiles else label)
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append",
                    help="named model, path, or a comma list merged as deid merges it (repeat); default: deid's")
    ap.add_argument("--imgsz", type=int, default=960, help="YOLO input size, as deid's --max-side (default 960)")
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("-o", "--output", type=Path, default=Path("out/fisheye_plates"))
    args = ap.parse_args()
    images = frames(args.video)
    args.output.mkdir(parents=True, exist_ok=True)
    for model in args.model or [DeidConfig().plate_model]:
        yolos = [PlateDetector(m, 0.25, args.imgsz) if m in PLATE_MODELS else
                 YoloDetector(m, "--plate-model", 0.25, args.imgsz) for m in model.split(",")]
        det = TiledDetector(yolos[0] if len(yolos) == 1 else EnsembleDetector(yolos), "auto", args.imgsz,
                            overlap=0.25, grid=tile_grid)  # as deid tiles plates (anonymizer.tiled)
        boxes, start = {}, time.perf_counter()
        for i, img in images.items():
            boxes[i] = det.detect(img).xyxy
        secs = (time.perf_counter() - start) / len(images)
        name = "+".join(Path(m).stem for m in model.split(","))
        out = args.output / f"{name}_sheet.png"
        cv2.imwrite(str(out), cv2.cvtColor(sheet(images, boxes), cv2.COLOR_RGB2BGR))
        per = ", ".join(f"frame {i}: {len(b)}" for i, b in boxes.items())
        for i, b in boxes.items():
            print(f"  frame {i}: " + " ".join(f"[{', '.join(str(int(v)) for v in box)}]" for box in b))
        print(f"{name}: {sum(len(b) for b in boxes.values())} boxes ({per}); {secs:.1f} s a frame; sheet {out}")


if __name__ == "__main__":
    main()
