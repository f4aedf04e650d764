"""How fast `deid review` answers a frame step: the page's two requests (the picture and the regions), over HTTP.

On ../shared/data/videos/street_faces_1080p.mp4 (and its first 50 frames scaled to 4K): every frame stepped
forwards, then backwards, then 20 jumps to random frames with the caches emptied; median and worst of each, in
milliseconds.

    python bench/review_latency.py
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "videos" / "street_faces_1080p.mp4"


def step(url: str, n: int) -> float:
    t = time.perf_counter()
    for path in (f"frame.jpg?video=anonymized&n={n}", f"api/regions?frame={n}"):
        with urllib.request.urlopen(url + path) as r:
            r.read()
    return (time.perf_counter() - t) * 1000


def measure(clip: Path, work: Path) -> dict[str, tuple[float, float]]:
    from deidcli.detections_io import detections_path
    from deidcli.review.server import ReviewServer
    from deidcli.review.session import ReviewSession

    out = work / f"{clip.stem}_anonymized.mp4"
    subprocess.run([sys.executable, "-m", "deidcli", "run", str(clip), "-o", str(out), "--keep-detections", "-q"],
                   check=True)
    session = ReviewSession(clip, out, detections_path(out), {"face": "frost"})
    server = ReviewServer(session)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    n = len(session.stored)
    try:
        step(server.url, 0)
        rows = {"forward": [step(server.url, i) for i in range(1, n)],
                "backward": [step(server.url, i) for i in range(n - 2, -1, -1)]}
        rng = random.Random(0)
        rows["jump"] = []
        for _ in range(20):  # to frames neither served nor decoded lately: a seek and a decode from the keyframe
            source = session.sources["anonymized"]
            source._cache.clear()
            source._recent.clear()
            rows["jump"].append(step(server.url, rng.randrange(n)))
    finally:
        server.shutdown()
        session.close()
    return {k: (statistics.median(v), max(v)) for k, v in rows.items()}


def main() -> None:
    if not CLIP.is_file():
        sys.exit(f"{CLIP}: not here")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = work / "street_4k.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(CLIP), "-frames:v", "50",
                        "-vf", "scale=3840:2160", "-c:v", "libx264", "-crf", "18", "-an", str(big)], check=True)
        for clip in (CLIP, big):
            for kind, (median, worst) in measure(clip, work).items():
                print(f"{clip.name:28s} {kind:8s} median {median:6.0f} ms   worst {worst:6.0f} ms")


if __name__ == "__main__":
    main()
