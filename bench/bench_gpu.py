"""`make bench-gpu`: deid's frames/s on a GPU at 1080p and 4K, beside the encoder alone on the same clips.

Prints, for clips made from the bundled sample (upscaled, looped to ``--frames``):
  * ffmpeg decode + libx264 re-encode with deid's settings (veryfast, crf 18): the ceiling deid's output has;
  * deid faces only, and deid on every target given (``--all-targets``), with ``--device``: frames/s of the
    processing (the report's), wall seconds with start-up, peak GPU memory (nvidia-smi), and the ratio to the encoder;
  * the adversarial methods (ifgvm, dedetect) on a few 1080p frames: seconds a frame.

It needs only what deid needs. On a machine without the registries, carry them (``bench/gpu_carry.py`` writes the
wheels and an xz-compressed ffmpeg under ``.gpu/``, and prints the commands that install them there). Run with
``--device cpu --sizes 320x180 --frames 12`` anywhere to check the script itself (tests/test_bench_gpu.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_videos" / "astronaut_pan.mp4"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(size: str, frames: int, dst: Path) -> Path:
    """The bundled sample scaled to ``size`` and looped to ``frames`` frames (x264 ultrafast, crf 12)."""
    w, h = size.split("x")
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(SAMPLE),
                    "-frames:v", str(frames), "-vf", f"scale={w}:{h}:flags=lanczos", "-c:v", "libx264",
                    "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", "-an", str(dst)], check=True)
    return dst


class GpuMemory:
    """Peak GPU memory in MiB while it runs, from ``nvidia-smi`` every 100 ms (None without one)."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._proc = None
        if shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                           "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                value = int(line.strip().split()[0])
            except (ValueError, IndexError):
                continue
            self.peak = value if self.peak is None else max(self.peak, value)

    def stop(self) -> int | None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()
        return self.peak


def encoder_alone(src: Path, dst: Path, frames: int) -> float:
    """Frames/s of ffmpeg decoding ``src`` and encoding it as deid does (libx264 veryfast, crf 18)."""
    t = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "18", str(dst)], check=True)
    return frames / (time.perf_counter() - t)


def deid_run(src: Path, dst: Path, device: str, extra: list[str]) -> dict:
    """One ``deid run``: the report's frames/s, the wall time with start-up, peak GPU memory; or its error line."""
    report = dst.with_suffix(".json")
    cmd = [sys.executable, "-m", "deidcli", "run", str(src), "-o", str(dst), "--overwrite", "--quiet",
           "--device", device, "--report", str(report), *extra]
    memory = GpuMemory()
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak = memory.stop()
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1], "exit": r.returncode}
    f = json.loads(report.read_text())["files"][0]
    return {"fps": f["fps"], "wall": wall, "frames": f["frames"], "gpu_mib": peak, "faces": f["faces_total"],
            "fallback": f["regions_fallback"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", default="1920x1080,3840x2160")
    ap.add_argument("--frames", type=int, default=300, help="frames of each clip")
    ap.add_argument("--all-targets", default="face,body,plate",
                    help="the second run's --targets ('' to skip); models as --body-model/--plate-model say")
    ap.add_argument("--body-model", default=None)
    ap.add_argument("--plate-model", default=None)
    ap.add_argument("--adversarial-frames", type=int, default=3, help="1080p frames for ifgvm and dedetect (0: skip)")
    ap.add_argument("--keep", type=Path, default=None, help="folder for the clips and outputs (default: temporary)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="deid-bench-gpu-"))
    tmp.mkdir(parents=True, exist_ok=True)
    models = [*(["--body-model", args.body_model] if args.body_model else []),
              *(["--plate-model", args.plate_model] if args.plate_model else [])]
    print(f"device {args.device}; clips from {SAMPLE.name}, {args.frames} frames each; x264 veryfast crf 18\n")
    print(f"{'clip':>10}  {'run':<24} {'frames/s':>9} {'wall s':>7} {'GPU MiB':>8} {'/ encoder':>9}")
    rows = []
    for size in args.sizes.split(","):
        clip = make_clip(size, args.frames, tmp / f"clip_{size}.mp4")
        enc = encoder_alone(clip, tmp / f"encoder_{size}.mp4", args.frames)
        print(f"{size:>10}  {'encoder alone':<24} {enc:9.1f}")
        runs = [("faces", ["--targets", "face"])]
        if args.all_targets:
            runs.append((args.all_targets, ["--targets", args.all_targets, *models]))
        for name, extra in runs:
            r = deid_run(clip, tmp / f"deid_{size}_{name.replace(',', '+')}.mp4", args.device, extra)
            rows.append({"size": size, "run": name, "encoder_fps": enc, **r})
            if "error" in r:
                print(f"{size:>10}  {name:<24} not run (exit {r['exit']}): {r['error']}")
                continue
            mib = "n/a" if r["gpu_mib"] is None else str(r["gpu_mib"])
            print(f"{size:>10}  {name:<24} {r['fps']:9.1f} {r['wall']:7.1f} {mib:>8} {r['fps'] / enc:9.2f}")
    if args.adversarial_frames:
        clip = make_clip("1920x1080", args.adversarial_frames, tmp / "adversarial_1080p.mp4")
        print(f"\nadversarial methods, {args.adversarial_frames} frames at 1920x1080")
        for method in ("ifgvm", "dedetect"):
            r = deid_run(clip, tmp / f"deid_{method}.mp4", args.device, ["--method", method])
            rows.append({"size": "1920x1080", "run": method, **r})
            if "error" in r:
                print(f"  {method:<9} not run (exit {r['exit']}): {r['error']}")
                continue
            crops = r["faces"] * r["fps"] / max(r["frames"], 1)
            print(f"  {method:<9} {1 / r['fps']:7.2f} s a frame  {crops:6.2f} faces/s  ({r['faces']} faces, "
                  f"{r['fallback']} frosted instead)")
    for path in {tmp / "bench_gpu.json", args.json or tmp / "bench_gpu.json"}:
        path.write_text(json.dumps(rows, indent=1))
    print(f"\nfigures in {args.json or tmp / 'bench_gpu.json'}")


if __name__ == "__main__":
    main()
