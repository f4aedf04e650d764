"""Detections as data (`deid detect`, `deid run --detections`) and the independent audit (`deid audit`)."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from conftest import ffmpeg, run_deid
from deidcli.errors import ExitCode


@pytest.fixture(scope="module")
def detected(tmp_path_factory, sample):
    d = tmp_path_factory.mktemp("detect")
    jsonl = d / "sample.jsonl"
    r = run_deid("detect", sample, "-o", jsonl, "--quiet")
    assert r.returncode == 0, r.stderr
    return jsonl


def _decoded(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_detect_writes_one_line_per_frame(detected):
    lines = detected.read_text().splitlines()
    head = json.loads(lines[0])
    assert head["format"] == "deid-detections/1" and (head["width"], head["height"]) == (640, 360)
    frames = [json.loads(x) for x in lines[1:]]
    assert [f["frame"] for f in frames] == list(range(75))
    assert all(f["detections"] and f["detections"][0]["track_id"] >= 1 for f in frames)
    assert frames[1]["time_s"] == pytest.approx(0.04)


def test_run_with_detections_equals_run_with_detector(tmp_path, sample, detected):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert run_deid("run", sample, "-o", a, "--quiet").returncode == 0
    r = run_deid("run", sample, "-o", b, "--detections", detected, "--quiet")
    assert r.returncode == 0, r.stderr
    fa, fb = _decoded(a), _decoded(b)
    assert len(fa) == len(fb) == 75
    assert max(np.abs(x.astype(int) - y.astype(int)).max() for x, y in zip(fa, fb)) == 0


def test_a_detection_batch_finds_the_same_regions(tmp_path, sample, detected):
    """`--detect-batch 4` (a GPU's default is 8) on the CPU: the same tracks and boxes as frame by frame."""
    jsonl = tmp_path / "batched.jsonl"
    r = run_deid("detect", sample, "-o", jsonl, "--detect-batch", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    one, four = ([json.loads(x) for x in p.read_text().splitlines()[1:]] for p in (detected, jsonl))
    assert len(one) == len(four) == 75
    for a, b in zip(one, four):
        assert [d["track_id"] for d in a["detections"]] == [d["track_id"] for d in b["detections"]]
        np.testing.assert_allclose([d["box"] for d in a["detections"]], [d["box"] for d in b["detections"]],
                                   atol=0.05)


def test_detections_for_another_video_are_refused(tmp_path, detected):
    other = tmp_path / "other.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1", "-c:v", "libx264", str(other))
    r = run_deid("run", other, "-o", tmp_path / "out.mp4", "--detections", detected, "--quiet")
    assert r.returncode == int(ExitCode.INVALID_MEDIA)
    assert "640x360" in r.stderr and not (tmp_path / "out.mp4").exists()


def test_audit_passes_anonymized_and_fails_original(tmp_path, sample):
    out = tmp_path / "out.mp4"
    assert run_deid("run", sample, "-o", out, "--quiet").returncode == 0
    r = run_deid("audit", sample, out, "--every", "5", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["faces_checked"] == 15 and report["faces_leaked"] == 0 and report["passed"]
    assert (tmp_path / "out.mp4.audit.png").is_file()

    sheet = tmp_path / "leaks.png"
    r = run_deid("audit", sample, sample, "--every", "5", "--sheet", sheet, "--quiet")
    assert r.returncode == int(ExitCode.LEAK_ABOVE_LIMIT)
    assert "leak rate 1.0000" in r.stdout and "leak at frame 0 (0.00 s)" in r.stdout
    assert sheet.is_file() and sheet.stat().st_size > 1000


def test_audit_limit_allows_a_share_of_leaks(tmp_path, sample):
    r = run_deid("audit", sample, sample, "--every", "25", "--max-leak", "1.0", "--no-recognizer", "--quiet",
                 "--sheet", tmp_path / "sheet.png")  # not beside the bundled sample, a tracked file
    assert r.returncode == 0, r.stderr


def test_detect_takes_every_option_of_run_that_changes_the_regions():
    """`deid detect` writes the regions `deid run` would anonymize, so every detection and tracking option of run
    is one of detect's too (and means the same: both declare it once in cli.py)."""
    import typer.main

    from deidcli.cli import app

    command = typer.main.get_command(app)
    options = {name: {p.name for p in command.commands[name].params} for name in ("run", "detect")}
    regions = {"config", "detector", "threshold", "targets", "body_model", "vehicle_model", "plate_model", "scale",
               "tile", "tile_scale", "tile_every", "detect_every", "detect_batch", "track", "lookahead", "hold",
               "device"}
    assert regions <= options["run"] and regions <= options["detect"], regions - options["detect"]
