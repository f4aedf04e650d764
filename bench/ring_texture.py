"""How much texture the generative methods leave in the band around the new face, against the original's.

For every face CenterFace finds in the photos of a folder (default: the shared identities), the method is applied as
`deid run` does (the 2.0 ellipse around the box); in the ring between the face box's own ellipse and that region, the
standard deviation of the fine luminance texture (what a Gaussian blur of sigma 1.5 px at a 112 px face removes) is
compared with the original's there. 1 keeps the texture's strength, 0 is flat. Also writes before/after crops.

    python bench/ring_texture.py [--identities ../shared/data/identities] [--methods gan,replace] [--crops DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deidcli.config import FACE_MASK_SCALE  # noqa: E402
from deidcli.detection import build_detector  # noqa: E402
from deidcli.methods import get_method  # noqa: E402
from deidcli.methods import naive  # noqa: E402
from deidcli.methods.regions import RegionStyle, anonymize_frame  # noqa: E402
from deidcli.photos import load_rgb, photo_files  # noqa: E402

FINE_SIGMA = 1.5  # at a 112 px face


def fine_std(image: np.ndarray, ring: np.ndarray, face_px: float) -> float:
    """The standard deviation of ``image``'s fine luminance texture inside the boolean ``ring``."""
    y = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    y = 0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]
    fine = (y - naive.gaussian_blur(y, FINE_SIGMA * face_px / 112, clip=False))[0, 0].numpy()
    return float(fine[ring].std())


def ellipse(shape: tuple[int, int], box: np.ndarray, scale: float) -> np.ndarray:
    h, w = shape
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = (box[2] - box[0]) * scale / 2, (box[3] - box[1]) * scale / 2
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2 <= 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=Path, default=ROOT.parent / "shared" / "data" / "identities")
    parser.add_argument("--methods", default="gan,replace,autoencoder-ap,autoencoder")
    parser.add_argument("--crops", type=Path, help="folder for before/after crops of the first five faces")
    parser.add_argument("--limit", type=int, default=0, help="photos to use (0: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    detector = build_detector("centerface")
    photos = [p for _, p in photo_files(args.identities)][: args.limit or None]
    methods = [m for m in args.methods.split(",") if m]
    ratios: dict[str, list[float]] = {m: [] for m in methods}
    bound = {m: get_method(m) for m in methods}
    shown = 0
    for path in photos:
        img = load_rgb(path)
        found = detector.detect(img, 1.0)
        if not len(found):
            continue
        big = int(np.argmax((found.xyxy[:, 3] - found.xyxy[:, 1])))
        one = found[np.array([big])]
        box = one.xyxy[0]
        face_px = float(box[3] - box[1])
        ring = ellipse(img.shape[:2], box, FACE_MASK_SCALE) & ~ellipse(img.shape[:2], box, 1.15)
        if ring.sum() < 100:
            continue
        before = fine_std(img, ring, face_px)
        outs = {}
        for m in methods:
            out = anonymize_frame(img, one, RegionStyle(bound[m]))
            outs[m] = out
            ratios[m].append(fine_std(out, ring, face_px) / max(before, 1e-6))
        if args.crops and shown < 5:
            import cv2

            args.crops.mkdir(parents=True, exist_ok=True)
            s = FACE_MASK_SCALE * 0.6
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            half = face_px * s
            x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
            x2, y2 = int(min(img.shape[1], cx + half)), int(min(img.shape[0], cy + half))
            tiles = [cv2.resize(a[y1:y2, x1:x2], (192, 192)) for a in (img, *outs.values())]
            cv2.imwrite(str(args.crops / f"{path.stem}.jpg"), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            shown += 1
    for m in methods:
        r = np.array(ratios[m])
        print(f"{m:15s} ring texture / original's: median {np.median(r):.2f}, quartiles {np.quantile(r, 0.25):.2f}"
              f"-{np.quantile(r, 0.75):.2f} ({len(r)} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
