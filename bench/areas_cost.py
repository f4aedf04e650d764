"""`make bench`: what places cost a 1080p run, per frame, on one core.

Renders a synthetic 1080p flight over the Stanford Drone aerial frame (tests/flights.py; needs ../shared) and
prints:
  * ground tracking: CPU ms a frame of track_ground on the 480 px grey frames (the issue's goal: under 10 ms),
    and the pre-pass's decoding and scaling of those frames beside it;
  * geofence placement: CPU ms a frame to interpolate the telemetry and project the zones (a few matrix products);
  * the whole `deid run` with and without a geofence (4 zones, frosted by default, or solid) and a ground area,
    wall seconds (same run, same clip): what hiding the areas' pixels costs beside placing them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def cpu_ms(fn, n: int) -> float:
    t = time.process_time()
    fn()
    return (time.process_time() - t) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flight", default="turning")
    ap.add_argument("--runs", type=int, default=1, help="whole `deid run`s of each kind (median)")
    args = ap.parse_args()
    if not (ROOT.parent / "shared" / "data" / "persons").is_dir():
        print("areas cost: ../shared/data is absent; skipped")
        return
    import flights
    from deidcli.areas.ground_track import small_frames, track_ground
    from deidcli.areas.places import Places
    from deidcli.config import DeidConfig
    from deidcli.video import VideoReader

    cv2.setNumThreads(1)
    fl = flights.flight(args.flight, 1920, 1080)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        r = flights.render(fl, flights.ground_texture(), tmp)
        n = len(fl)
        small: list[np.ndarray] = []
        decode = cpu_ms(lambda: small.extend(small_frames(r.video)), n)
        track = cpu_ms(lambda: track_ground(iter(small), 1920, 1080), n)
        zones = flights.write_geojson(tmp / "zones.geojson", flights.zones(), fl.lat0, fl.lon0)
        drawn = flights.apply(flights.ground_to_image(fl, 0), flights.zones()["garden"][0])
        areas = tmp / "areas.json"
        areas.write_text(json.dumps({"areas": [{"polygon": drawn.tolist(), "anchor": "ground"}]}))
        cfg = DeidConfig().with_overrides(geofence=str(zones), telemetry=str(r.srt))
        info = VideoReader(r.video).info
        placer = Places.from_config(cfg).for_video(r.video, info)
        place = cpu_ms(lambda: [placer.place(i, i / float(info.frame_rate)) for i in range(n)], n)
        print(f"places, {args.flight} flight at 1920x1080, {n} frames, one core (CPU ms a frame):")
        print(f"  ground tracking      {track:6.2f} ms  (pre-pass decoding + scaling to 480 px: {decode:.2f} ms)")
        print(f"  geofence placement   {place:6.2f} ms  ({len(placer.places.zones)} zones: telemetry, projection)")
        deid = [sys.executable, "-m", "deidcli", "run", str(r.video), "-q", "--overwrite"]
        fence = ["--geofence", str(zones), "--telemetry", str(r.srt)]
        runs = {"faces only": [], "+ geofence": fence, "+ geofence, area=solid": [*fence, "--method", "area=solid"],
                "+ ground area": ["--areas", str(areas)]}
        walls = {}
        for label, extra in runs.items():
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                subprocess.run([*deid, "-o", str(tmp / "out.mp4"), *extra], check=True)
                times.append(time.perf_counter() - t)
            walls[label] = sorted(times)[len(times) // 2]
        base = walls["faces only"]
        print("  deid run, wall:      " + ", ".join(f"{k} {v:.1f} s ({v / base:.2f}x)" for k, v in walls.items()))


if __name__ == "__main__":
    main()
