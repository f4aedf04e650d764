"""Recall of the tile schedule at 4K: the faces tiles on every frame find, covered by `deid run`'s defaults?

    python bench/tile_recall.py [--frames 24] [--tile-every 12]

Three materials from ../shared/data (built in memory, never written): the street clip's first frames scaled to
3840x2160, the fisheye clip (2560x1920), and faces of shared/data/identities pasted 12-32 px high into the Stanford
Drone aerial frame scaled to 4K, the camera panning and some faces walking. For each: reference faces (the whole
frame and every tile of the sliding grid, every frame), how many the schedule leaves uncovered (with their scores:
near the threshold 0.2 or not) and how many frames ran their tiles. tests/test_tile_schedule.py asserts on it.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import av
import cv2
import numpy as np

from deidcli.config import DeidConfig
from deidcli.detection import build_detector
from deidcli.evaluation.tile_recall import TileRecall, tile_recall
from deidcli.video.reader import Frame, to_rgb

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STREET = DATA / "videos" / "street_faces_1080p.mp4"
FISHEYE = DATA / "videos" / "fisheye_faces_2560x1920.mp4"
AERIAL = DATA / "persons" / "stanford_drone_sdd_quad_video2_reference.jpg"
IDENTITIES = DATA / "identities"


def clip_frames(path: Path, frames: int, size: tuple[int, int] | None = None) -> tuple[list[Frame], float]:
    """The first ``frames`` frames of a clip (scaled to ``size`` with Lanczos, as the bench's 4K clip is), and its
    frame rate."""
    out = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = float(stream.average_rate or 25)
        for i, frame in enumerate(c.decode(stream)):
            if i == frames:
                break
            image = to_rgb(frame)
            if size is not None:
                image = cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)
            out.append(Frame(i, i, image))
    return out, rate


def small_faces(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` face crops (the head with some hair) of shared/data/identities, as CenterFace finds them."""
    detector = build_detector("centerface")
    rows = list(csv.DictReader(open(IDENTITIES / "identities.csv")))
    rng = np.random.default_rng(seed)
    faces = []
    for row in rng.permutation(rows):
        image = cv2.cvtColor(cv2.imread(str(IDENTITIES / row["file"])), cv2.COLOR_BGR2RGB)
        dets = detector.detect(image)
        if not len(dets):
            continue
        x1, y1, x2, y2 = dets.xyxy[int(np.argmax(dets.confidence))]
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.4
        a, b = int(max(cy - side / 2, 0)), int(max(cx - side / 2, 0))
        faces.append(image[a:int(cy + side / 2), b:int(cx + side / 2)])
        if len(faces) == count:
            break
    return faces


def pasted_aerial(frames: int, faces: int = 24, seed: int = 0) -> tuple[list[Frame], float]:
    """The aerial frame scaled to 4400 x 2420 with ``faces`` faces pasted 12-32 px high; a 3840x2160 window pans
    across it 12 px a frame, and every third face walks 3 px a frame."""
    ground = cv2.resize(cv2.cvtColor(cv2.imread(str(AERIAL)), cv2.COLOR_BGR2RGB), (4400, 2420),
                        interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    crops = small_faces(faces, seed)
    heights = rng.uniform(12, 32, len(crops))
    spots = np.column_stack([rng.uniform(100, 4250, len(crops)), rng.uniform(80, 2300, len(crops))])
    walk = np.array([(3.0, 1.0) if i % 3 == 0 else (0.0, 0.0) for i in range(len(crops))])
    out = []
    for t in range(frames):
        canvas = ground.copy()
        for crop, hgt, (x, y), (dx, dy) in zip(crops, heights, spots, walk):
            w = max(4, int(round(hgt * crop.shape[1] / crop.shape[0])))
            small = cv2.resize(crop, (w, int(round(hgt))), interpolation=cv2.INTER_AREA)
            x0, y0 = int(x + dx * t), int(y + dy * t)
            canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small[:canvas.shape[0] - y0, :canvas.shape[1] - x0]
        left = min(12 * t, canvas.shape[1] - 3840)
        out.append(Frame(t, t, np.ascontiguousarray(canvas[130:130 + 2160, left:left + 3840])))
    return out, 25.0


MATERIALS = {
    "street_4k": lambda n: clip_frames(STREET, n, (3840, 2160)),
    "fisheye": lambda n: clip_frames(FISHEYE, n),
    "aerial_pasted_4k": pasted_aerial,
}


def measure(name: str, frames: int, cfg: DeidConfig) -> TileRecall:
    clip, rate = MATERIALS[name](frames)
    return tile_recall(clip, cfg, rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--tile-every", type=int, default=DeidConfig.tile_every)
    ap.add_argument("--only", choices=sorted(MATERIALS))
    args = ap.parse_args()
    cfg = DeidConfig(tile_every=args.tile_every)
    every = f"{cfg.tile_every} frames" if cfg.tile_every else "0.4 s"
    print(f"tiles every {every} against every tile on every frame ({args.frames} frames each)")
    for name in [args.only] if args.only else MATERIALS:
        t = time.perf_counter()
        r = measure(name, args.frames, cfg)
        print(f"  {name:18s} {r.faces:5d} reference faces, {len(r.uncovered):3d} uncovered ({r.covered:.4f} covered); "
              f"tiles ran on {r.frames_tiled}/{r.frames} frames  [{time.perf_counter() - t:.0f} s]")
        for frame, score, height in r.uncovered:
            print(f"      frame {frame:3d}  score {score:.2f}  {height:.0f} px high")


if __name__ == "__main__":
    main()
