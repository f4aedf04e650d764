"""One test per case of the reliability corpus (tests/corpus.py): a correct output or one clear error, never less.

A correct output has the input's frames and timestamps, size, streams of every kind (or the documented
conversion), metadata and chapters, and no face left visible in any video stream or cover picture
(tests/corpus_check.py). An error is one ``deid: error:`` line with its documented exit code, no output, the input
unchanged. Faults (signals, full disk, clashing outputs) and telemetry sidecars have tests of their own below;
the read-only output folder is tests/test_bad_inputs.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SAMPLE, run_cli, run_deid, sha256
from corpus import CASES, SHARED, Case, build, ff
from corpus_check import problems
from deidcli.errors import ExitCode
from deidcli.outputs import TMP_MARK

FILE_CASES = [c for c in CASES if not c.custom]


def _param(c: Case):
    marks = [pytest.mark.slow] if c.slow else []
    return pytest.param(c, id=c.name, marks=marks)


@pytest.fixture(scope="module")
def judges():
    """The corpus check's detector and confirmer, loaded once."""
    from deidcli.detection import build_detector
    from deidcli.audit import Confirmer

    return build_detector("centerface", 0.3, "cpu"), Confirmer()


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _one_error_line(stderr: str, words: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("deid: error:"), stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("case", [_param(c) for c in FILE_CASES])
def test_corpus_case(case: Case, tmp_path, judges):
    if case.shared and not (SHARED / case.shared).exists():
        pytest.skip(f"real data not available: {case.shared}")
    folder = tmp_path / "in"
    src = build(case, folder)
    before = sha256(src)
    made = _files(folder)
    report = tmp_path / "report.json"
    args = ["run", "-q", "--report", report, *case.args]
    cwd = None
    if case.group == "names":  # as a user types them: relative to the folder, a leading dash behind ./
        cwd, target = folder, (f"./{src.name}" if src.name.startswith("-") else src.name)
    else:
        target = src
    if case.out:
        args += ["-o", tmp_path / "out" / case.out]
    r = run_cli(*args[:1], target, *args[1:], cwd=cwd)
    assert sha256(src) == before, "the input was modified"
    assert not [p for p in tmp_path.rglob(f"*{TMP_MARK}*")], "a temporary file was left behind"
    if case.expect:
        assert r.returncode == case.expect, r.stderr
        _one_error_line(r.stderr, case.words)
        assert _files(folder) == made and not (tmp_path / "out").exists(), "an output was written"
        return
    assert r.returncode == 0, r.stderr
    entry = json.loads(report.read_text())["files"][0]
    out = Path(entry["output"])
    out = out if out.is_absolute() else folder / out
    detector, confirmer = judges
    found = problems(src, out, case.converted, strip="--strip-metadata" in case.args, detector=detector,
                     confirmer=confirmer)
    assert not found, "\n".join(found)
    assert entry["regions_fallback"] == 0, entry["regions_fallback_reasons"]


def test_every_group_the_issue_names_has_cases():
    groups = {c.group for c in CASES}
    assert {"container", "codec", "pixel format", "size", "timing", "streams", "metadata", "sidecar", "damage",
            "names", "faults"} <= groups
    assert len(CASES) >= 45


# --- names that look like options ------------------------------------------------------------------------------


def test_a_name_with_a_leading_dash_gets_one_line_with_the_way_out(tmp_path):
    src = tmp_path / "-clip.mp4"
    shutil.copy(SAMPLE, src)
    r = run_cli("run", "-q", src.name, cwd=tmp_path)
    assert r.returncode == int(ExitCode.USAGE)
    line = _one_error_line(r.stderr, "./-clip.mp4")
    assert "--help" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-clip.mp4"]


# --- faults ----------------------------------------------------------------------------------------------------


def _as_in_a_terminal() -> None:
    """The signal dispositions of a command typed in a terminal: a test run started in the background (as CI may
    be) ignores SIGINT, and its children would inherit that."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _as_under_nohup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _start(args: list, cwd: Path, how=_as_in_a_terminal) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deidcli", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=how)


def _wait_for_temporary(folder: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while not list(folder.glob(f"*{TMP_MARK}*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(1.0)  # let some frames reach the encoder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["sigint", "sigterm", "sighup"])
def test_a_signal_mid_run_leaves_nothing(tmp_path, sig):
    src = tmp_path / "clip.mp4"
    shutil.copy(SAMPLE, src)
    before = sha256(src)
    proc = _start(["run", src, "-q"], tmp_path)
    _wait_for_temporary(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == int(ExitCode.INTERRUPTED), err
    assert "interrupted" in err
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"] and sha256(src) == before


@pytest.mark.slow
def test_nohup_keeps_running_when_the_terminal_closes(tmp_path):
    src = tmp_path / "clip.mp4"
    shutil.copy(SAMPLE, src)
    proc = _start(["run", src, "-q"], tmp_path, _as_under_nohup)
    _wait_for_temporary(tmp_path, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (tmp_path / "clip_anonymized.mp4").is_file()


@pytest.mark.slow
def test_kill_9_then_the_same_command_again(tmp_path):
    src = tmp_path / "clip.mp4"
    shutil.copy(SAMPLE, src)
    proc = _start(["run", src, "-q"], tmp_path)
    _wait_for_temporary(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert not (tmp_path / "clip_anonymized.mp4").exists(), "a killed run may leave no file under the output name"
    assert list(tmp_path.glob(f"*{TMP_MARK}*")), "the killed run's temporary is there to be cleaned"
    r = run_deid("run", src, "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_anonymized.mp4"]


def test_the_same_output_twice(tmp_path):
    src = tmp_path / "clip.mp4"
    shutil.copy(SAMPLE, src)
    assert run_cli("run", src, "-q").returncode == 0
    first = sha256(tmp_path / "clip_anonymized.mp4")
    r = run_cli("run", src, "-q")
    assert r.returncode == int(ExitCode.OUTPUT_EXISTS)
    _one_error_line(r.stderr, "--overwrite")
    assert sha256(tmp_path / "clip_anonymized.mp4") == first
    assert run_cli("run", src, "-q", "--overwrite").returncode == 0


def test_a_file_output_with_several_inputs_is_refused(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(SAMPLE, tmp_path / name)
    r = run_cli("run", tmp_path / "a.mp4", tmp_path / "b.mp4", "-o", tmp_path / "out.mp4", "-q")
    assert r.returncode == int(ExitCode.USAGE)
    _one_error_line(r.stderr, "give a folder")
    assert not (tmp_path / "out.mp4").exists()


def test_two_inputs_that_would_write_one_output_are_refused(tmp_path):
    for d in ("day1", "day2"):
        (tmp_path / d).mkdir()
        shutil.copy(SAMPLE, tmp_path / d / "clip.mp4")
    r = run_cli("run", tmp_path / "day1" / "clip.mp4", tmp_path / "day2" / "clip.mp4", "-o", tmp_path / "out", "-q")
    assert r.returncode == int(ExitCode.USAGE)
    _one_error_line(r.stderr, "would both be written")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk(tmp_path, small_disk):
    src = tmp_path / "big.mp4"
    ff("-i", SAMPLE, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "0", "-c:a", "copy", src)  # > 1 MiB out
    r = run_cli("run", src, "-o", small_disk / "out.mp4", "-q", "--crf", "0")
    assert r.returncode == int(ExitCode.OUTPUT_NOT_WRITABLE), r.stderr
    _one_error_line(r.stderr, "no space left on device")
    assert list(small_disk.iterdir()) == []


# --- telemetry sidecars ----------------------------------------------------------------------------------------

DJI_SRT = """1
00:00:00,000 --> 00:00:00,500
<font size="28">SrtCnt : 1, DiffTime : 500ms
2026-05-01 10:00:00.000
[iso : 100] [shutter : 1/1000.0] [fnum : 280] [ev : 0] [latitude: 28.572901] [longitude: -80.649012] [rel_alt: 1.200 abs_alt: 52.345] </font>

2
00:00:00,500 --> 00:00:01,000
HOME(-80.6490,28.5729) 2026.05.01 10:00:00
GPS(-80.6491,28.5730,16) BAROMETER:1.9
ISO:100 Shutter:60 EV: Fnum:2.2
"""


def _drone_folder(tmp_path: Path) -> Path:
    src = tmp_path / "card" / "DCIM"
    src.mkdir(parents=True)
    shutil.copy(SAMPLE, src / "DJI_0003.MP4")
    (src / "DJI_0003.SRT").write_text(DJI_SRT)
    (src / "notes.txt").write_text("not media, not a sidecar")
    return tmp_path / "card"


@pytest.mark.slow
def test_batch_carries_the_telemetry_sidecar(tmp_path):
    card = _drone_folder(tmp_path)
    r = run_cli("batch", card, "-o", tmp_path / "out", "-q")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "DCIM"
    assert sorted(p.name for p in out.iterdir()) == ["DJI_0003.MP4", "DJI_0003.SRT"]
    assert (out / "DJI_0003.SRT").read_text() == DJI_SRT


@pytest.mark.slow
def test_batch_strips_positions_from_the_sidecar(tmp_path):
    card = _drone_folder(tmp_path)
    r = run_cli("batch", card, "-o", tmp_path / "out", "-q", "--strip-metadata")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "out" / "DCIM" / "DJI_0003.SRT").read_text()
    for gone in ("28.57", "80.64", "HOME", "GPS", "latitude", "abs_alt"):
        assert gone not in text, text
    for kept in ("[iso : 100]", "BAROMETER:1.9", "00:00:00,500 --> 00:00:01,000", "2026-05-01 10:00:00.000"):
        assert kept in text, text
    records = [json.loads(ln) for ln in (tmp_path / "out" / "deid-manifest.jsonl").read_text().splitlines()]
    srt = next(rec for rec in records if rec["input"].endswith(".SRT"))
    assert srt["status"] == "copied" and srt["positions_removed"] == 5 and srt["kind"] == "sidecar"


def test_a_sidecar_whose_positions_cannot_be_told_is_left_out():
    from deidcli.positions import strip_positions

    odd = "1\n00:00:00,000 --> 00:00:01,000\nPOS 28.572901 / -80.649012\n"
    assert not strip_positions(odd).safe
    assert strip_positions(DJI_SRT).safe


def test_the_reliability_page_lists_every_case():
    from corpus import ROOT, table

    page = ROOT / "docs" / "reliability.md"
    assert table() in page.read_text(), "regenerate docs/reliability.md's table: python tests/corpus.py --table"


def test_ordinary_subtitles_name_no_place():
    from deidcli.positions import has_positions

    assert not has_positions("hello\nworld\n{\\b1}bold{\\b0} words at 12:30, 3 of 4")
    assert has_positions("[iso : 100] [latitude: 28.572901]") and has_positions("GPS(-80.6491,28.5730,16)")
