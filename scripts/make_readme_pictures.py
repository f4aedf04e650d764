"""Make docs/images/generative.jpg: faces before and after each generative method, for the README.

One row per public-domain photo that ships with an installed package (the shared test photos are for tests only):
NASA's astronaut Eileen Collins (``skimage.data.astronaut()``) and the US Navy's photo of Grace Hopper (matplotlib's
sample data, ``grace_hopper.jpg``), both works of the US government. Each method runs as ``deid run`` would on the
photo: CenterFace, deid run's region, the default strength and model (trained into the cache first if absent).

    python scripts/make_readme_pictures.py [-o docs/images/generative.jpg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gan", "replace", "autoencoder-ap", "autoencoder")
SIDE = 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "images" / "generative.jpg")
    args = parser.parse_args(argv)
    rows = [_row(photo) for photo in _photos()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.output}")
    return 0


def _photos() -> list[np.ndarray]:
    from matplotlib import cbook
    from PIL import Image
    from skimage.data import astronaut

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    return [np.ascontiguousarray(astronaut()), np.ascontiguousarray(hopper)]


def _row(img: np.ndarray) -> np.ndarray:
    """The face of ``img`` (the largest CenterFace finds) with 20% around it, then each method's, side by side."""
    from deidcli.detection import build_detector
    from deidcli.methods import get_method
    from deidcli.methods.regions import RegionStyle, anonymize_frame

    found = build_detector("centerface").detect(img, 1.0)
    x1, y1, x2, y2 = found.xyxy[int(np.argmax(found.xyxy[:, 3] - found.xyxy[:, 1]))]
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (y2 - y1) * 1.2
    box = [int(max(0, cy - half)), int(min(img.shape[0], cy + half)), int(max(0, cx - half)),
           int(min(img.shape[1], cx + half))]
    tiles = [img] + [anonymize_frame(img, found, RegionStyle(get_method(name))) for name in METHODS]
    crops = [cv2.resize(t[box[0]:box[1], box[2]:box[3]], (SIDE, SIDE), interpolation=cv2.INTER_AREA) for t in tiles]
    for crop, label in zip(crops, ("original", *METHODS)):
        cv2.putText(crop, label, (6, SIDE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.hstack(crops)


if __name__ == "__main__":
    sys.exit(main())
