"""Shared fixtures: the bundled sample, real footage in ../shared (skipped when absent), small generated videos."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "sample_videos" / "astronaut_pan.mp4"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device this machine has: tensor code is tested on the GPU too where there is one."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or a skip when it is not there (a fresh clone has no ../shared)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def run_deid(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command, in a child process, so exit codes and stderr are what a user sees."""
    return subprocess.run(
        [sys.executable, "-m", "deidcli", *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command in this process (its argument parsing, exit codes and stderr lines, without a second
    interpreter start): for the many corpus cases. Signals and crashes are tested with :func:`run_deid`."""
    import contextlib
    import io
    import signal

    from deidcli.cli import main

    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    argv, here = sys.argv, os.getcwd()
    sys.argv = ["deid", *map(str, args)]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(here)
        for s, h in handlers.items():
            signal.signal(s, h)
    return subprocess.CompletedProcess(sys.argv, code, out.getvalue(), err.getvalue())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def probe(path: Path) -> dict:
    """Streams, metadata and video timestamps of a file, read with PyAV."""
    with av.open(str(path)) as c:
        streams = [
            {
                "type": s.type,
                "codec": s.codec_context.name if s.codec_context else None,
                "metadata": dict(s.metadata),
                "duration": float(s.duration * s.time_base) if s.duration else None,
            }
            for s in c.streams
        ]
        v = c.streams.video[0]
        pts = [p.pts for p in c.demux(v) if p.pts is not None]
        return {
            "streams": streams,
            "metadata": dict(c.metadata),
            "video_pts": sorted(pts),
            "video_tb": v.time_base,
        }


@pytest.fixture(scope="session")
def sample() -> Path:
    assert SAMPLE.is_file(), "sample_videos/astronaut_pan.mp4 missing: run `make sample`"
    return SAMPLE
