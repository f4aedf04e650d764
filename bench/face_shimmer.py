"""Temporal consistency of a method on video: does the new face shimmer from frame to frame?

    python bench/face_shimmer.py VIDEO --method gan [--method replace ...]

Runs `deid detect` once and `deid run --detections` per method, then compares, inside every tracked face box seen in
two consecutive frames, the mean absolute change from one frame to the next in the output with the same figure in the
original (the camera and the person move in both). A ratio of 1 is as steady as the source; the bound deid keeps
for its generative methods is 2 (one target identity per track is a unit test: tests/test_generative.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np


def frames(path: Path):
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield f.to_ndarray(format="rgb24").astype(np.int16)


def tracks(jsonl: Path) -> list[dict[int, np.ndarray]]:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()[1:]]
    return [{d["track_id"]: np.array(d["box"]) for d in r["detections"] if d.get("track_id", -1) >= 0} for r in rows]


def change_inside(a: np.ndarray, b: np.ndarray, boxes: list[np.ndarray]) -> list[float]:
    out = []
    h, w = a.shape[:2]
    for x1, y1, x2, y2 in boxes:
        x1, y1 = max(0, int(x1)), max(0, int(y1))
        x2, y2 = min(w, int(x2)), min(h, int(y2))
        if x2 - x1 > 2 and y2 - y1 > 2:
            out.append(float(np.abs(a[y1:y2, x1:x2] - b[y1:y2, x1:x2]).mean()))
    return out


def shimmer(original: Path, output: Path, per_frame: list[dict[int, np.ndarray]]) -> float:
    src, dst = [], []
    prev = None
    for i, (o, a) in enumerate(zip(frames(original), frames(output))):
        if prev is not None and i < len(per_frame):
            both = [per_frame[i][t] for t in per_frame[i] if t in per_frame[i - 1]]
            src += change_inside(o, prev[0], both)
            dst += change_inside(a, prev[1], both)
        prev = (o, a)
    return float(np.mean(dst) / max(np.mean(src), 1e-6))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--method", action="append", required=True)
    args = ap.parse_args()
    deid = [sys.executable, "-m", "deidcli"]
    with tempfile.TemporaryDirectory() as tmp:
        det = Path(tmp) / "regions.jsonl"
        subprocess.run([*deid, "detect", str(args.video), "-o", str(det), "-q"], check=True)
        per_frame = tracks(det)
        n_tracks = len({t for f in per_frame for t in f})
        for method in args.method:
            out = Path(tmp) / f"{method}{args.video.suffix}"
            subprocess.run([*deid, "run", str(args.video), "-o", str(out), "--method", method, "--detections",
                            str(det), "-q"], check=True)
            ratio = shimmer(args.video, out, per_frame)
            print(f"{method:16s} frame-to-frame change in tracked faces: {ratio:.2f}x the original's "
                  f"({n_tracks} tracks)")


if __name__ == "__main__":
    main()
