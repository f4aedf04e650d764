"""`make bench-gpu`'s script runs end to end (here on the CPU, on a tiny clip), so the one prepared for a GPU machine
is known to work before device time is spent on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_script_prints_every_figure(tmp_path):
    out = tmp_path / "figures.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--device", "cpu", "--sizes", "320x180",
                        "--frames", "12", "--all-targets", "face,plate", "--adversarial-frames", "0",
                        "--keep", str(tmp_path / "work"), "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "encoder alone" in r.stdout and "faces" in r.stdout
    rows = {row["run"]: row for row in json.loads(out.read_text())}
    faces = rows["faces"]
    assert faces["frames"] == 12 and faces["fps"] > 0 and faces["encoder_fps"] > 0 and faces["faces"] >= 12
    # the plate model is an extra's: the run either worked or stopped with its one line
    plates = rows["face,plate"]
    assert plates.get("frames") == 12 or plates["exit"] == 9
