"""Is `deid batch --jobs 2` faster than `--jobs 1`? A tree of short clips, both ways, on the same machine.

    python bench/batch_jobs.py [--files 12] [--frames 25]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--frames", type=int, default=25)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(ROOT / "sample_videos/astronaut_pan.mp4"),
                        "-frames:v", str(args.frames), "-c:v", "libx264", "-c:a", "aac", str(clip)], check=True)
        src = tmp / "src"
        for i in range(args.files):
            (src / f"day {i % 3}").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip, src / f"day {i % 3}" / f"clip {i}.mp4")
        times = {}
        for jobs in (1, 2):
            dst = tmp / f"out{jobs}"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "deidcli", "batch", str(src), "-o", str(dst), "-q", "--jobs",
                            str(jobs)], check=True)
            times[jobs] = time.perf_counter() - t
            print(f"--jobs {jobs}: {times[jobs]:6.1f} s for {args.files} clips of {args.frames} frames", flush=True)
        print(f"--jobs 2 is {times[1] / times[2]:.2f}x as fast as --jobs 1")


if __name__ == "__main__":
    main()
