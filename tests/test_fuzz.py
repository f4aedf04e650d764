"""Fuzzing the probing and frame-reading layer with mutated real files: never a traceback, a hang, or an output.

Mutations of small real files of every container (bytes flipped, mostly in the headers; cut; random bytes
inserted; ranges zeroed) go to a reader in a child process, so a crash or a hang in a decoder is caught and
reported rather than taking the test run down. Every file must be read whole, or refused with deid's own error
(exit 5 or 6). The examples are derandomized: CI replays the same ones. A few mutated files also go through
``deid run``: a file that fails leaves no output.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import SAMPLE, run_cli  # noqa: E402
from corpus import ff  # noqa: E402

TIMEOUT = 30  # seconds for one file: far above what a 0.5 s clip takes, so only a hang reaches it
BUDGET = 45  # seconds of fuzzing in all: the quick suite's share

WORKER = r"""
import sys
from deidcli.errors import DeidError
from deidcli.video import VideoReader
from deidcli.batch.tree import sniff
for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        sniff(__import__("pathlib").Path(path))
        frames = 0
        for _ in VideoReader(path).frames():
            frames += 1
        print("ok", frames, flush=True)
    except DeidError as exc:
        print("error", int(exc.exit_code), flush=True)
    except BaseException as exc:
        print("crash", type(exc).__name__, repr(exc)[:300].replace("\n", " "), flush=True)
"""


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    """Half a second of the sample clip in every container deid reads, and a JPEG."""
    folder = tmp_path_factory.mktemp("seeds")
    common = ["-t", "0.5", "-i", str(SAMPLE), "-vf", "scale=160:90"]
    made = {
        "plain.mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
        "fast.mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-movflags", "+faststart"],
        "clip.mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "libopus"],
        "clip.webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
        "clip.avi": ["-c:v", "mpeg4", "-c:a", "libmp3lame"],
        "clip.ts": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
        "clip.mov": ["-c:v", "mjpeg", "-c:a", "pcm_s16le"],
    }
    for name, args in made.items():
        ff(*common, *args, str(folder / name))
    ff("-i", str(SAMPLE), "-frames:v", "1", str(folder / "frame.jpg"))
    return [(folder / n).read_bytes() for n in [*made, "frame.jpg"]]


class Reader:
    """A reader in a child process: ``read(path)`` gives its one-line verdict, or says it hung or crashed."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def read(self, path: Path) -> str:
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        if not ready:
            self.proc.kill()
            self._start()
            return "hang"
        line = self.proc.stdout.readline().strip()
        if not line:
            code = self.proc.wait()
            self._start()
            return f"died {code}"
        return line

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def reader():
    r = Reader()
    yield r
    r.close()


def _mutate(data: bytes, kind: str, spots: list[tuple[float, int]], cut: float) -> bytes:
    b = bytearray(data)
    n = len(b)
    if kind == "cut":
        return bytes(b[: int(n * cut)])
    for where, value in spots:
        # cube the position: most mutations land in the first part of the file, where headers and indexes live
        at = min(n - 1, int(n * where ** 3))
        if kind == "flip":
            b[at] = value
        elif kind == "insert":
            b[at:at] = bytes([value]) * (1 + value % 64)
        elif kind == "zero":
            b[at:at + 1 + value * 4] = bytes(len(b[at:at + 1 + value * 4]))
    return bytes(b)


mutations = st.tuples(
    st.integers(0, 7),  # which seed
    st.sampled_from(["flip", "flip", "insert", "zero", "cut"]),
    st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 255)), min_size=1, max_size=24),
    st.floats(0.01, 0.999),
)


@pytest.fixture(scope="module")
def clock():
    return {"start": time.monotonic()}


@settings(max_examples=2000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutation=mutations)
def test_mutated_files_are_read_or_refused_never_crash(mutation, seeds, reader, tmp_path_factory, clock):
    if time.monotonic() - clock["start"] > BUDGET:
        return  # the budget is spent: the rest of the examples pass without running
    seed, kind, spots, cut = mutation
    data = _mutate(seeds[seed], kind, spots, cut)
    path = tmp_path_factory.mktemp("fuzz") / ("case.jpg" if seed == 7 else "case.bin")
    path.write_bytes(data)
    verdict = reader.read(path)
    assert verdict.startswith("ok") or verdict in ("error 5", "error 6"), (verdict, kind, spots, cut, seed)
    path.unlink()


@pytest.mark.parametrize("kind,where", [("flip", 0.02), ("flip", 0.3), ("zero", 0.5), ("cut", 0.7),
                                        ("insert", 0.1), ("flip", 0.9)])
@pytest.mark.parametrize("seed", [0, 2], ids=["mp4", "mkv"])
def test_a_mutated_file_that_fails_leaves_no_output(seeds, tmp_path, kind, where, seed):
    data = _mutate(seeds[seed], kind, [(where ** (1 / 3), 37 + i) for i in range(8)], where)
    src = tmp_path / ("clip.mp4" if seed == 0 else "clip.mkv")
    src.write_bytes(data)
    r = run_cli("run", src, "-q")
    names = sorted(p.name for p in tmp_path.iterdir())
    if r.returncode:
        assert r.returncode in (5, 6), r.stderr
        assert names == [src.name], names
        assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr
    else:
        assert names == sorted([src.name, src.stem + "_anonymized" + src.suffix])
    assert os.path.getsize(src) == len(data)
