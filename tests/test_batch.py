"""`deid batch`: a nested archive, resumable after kill -9, a manifest of every file, the same on Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import ffmpeg, run_deid
from deidcli.batch.manifest import Manifest
from deidcli.batch.tree import scan, sniff
from deidcli.outputs import remove_stale_temporaries
from deidcli.outputs import TMP_MARK

VOLATILE = {"started", "finished", "seconds", "fps", "pid", "host"}


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, sample) -> Path:
    """The sample clip cut to 8 frames (with its audio): a batch of 20 files stays quick."""
    clip = tmp_path_factory.mktemp("clip") / "short.mp4"
    ffmpeg("-i", sample, "-frames:v", "8", "-t", "0.32", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", clip)
    return clip


def make_tree(root: Path, clip: Path, copies: int = 18) -> dict[str, str]:
    """Nested copies of the clip, two photos, one corrupt clip, one text file, names with spaces and non-ASCII.
    Returns what each relative path is."""
    kinds = {}
    for i in range(copies):
        sub = ["", "flight a", "flight a/day 2", "vidéos/été"][i % 4]
        rel = f"{sub}/clip {i:02d}.mp4".lstrip("/")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, root / rel)
        kinds[rel] = "video"
    (root / "photos").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((120, 160, 3)) * 255).astype(np.uint8)).save(root / "photos/still.jpg")
    Image.fromarray((rng.random((90, 90, 3)) * 255).astype(np.uint8)).save(root / "photos/no extension", format="PNG")
    kinds["photos/still.jpg"] = kinds["photos/no extension"] = "image"
    (root / "broken.mp4").write_bytes(clip.read_bytes()[:3000])
    kinds["broken.mp4"] = "corrupt"
    (root / "notes.txt").write_text("shot list\n")
    kinds["notes.txt"] = "other"
    return kinds


def records(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "deid-manifest.jsonl").read_text().splitlines()]


def frames_of(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_sniff_by_content(tmp_path, short_clip):
    shutil.copyfile(short_clip, tmp_path / "flight_0001")
    Image.new("RGB", (8, 8)).save(tmp_path / "pic.dat", format="PNG")
    (tmp_path / "a.txt").write_text("x")
    assert sniff(tmp_path / "flight_0001") == "video"
    assert sniff(tmp_path / "pic.dat") == "image"
    assert sniff(tmp_path / "a.txt") is None


def test_scan_refuses_paths_that_leave_the_trees(tmp_path, short_clip):
    src, dst = tmp_path / "src", tmp_path / "src" / "out"  # destination inside the source: never scanned
    (src / "sub").mkdir(parents=True)
    shutil.copyfile(short_clip, src / "sub" / "a.mp4")
    (src / "escape.mp4").symlink_to("/etc/hostname")
    (src / "inside.mp4").symlink_to(src / "sub" / "a.mp4")
    dst.mkdir()
    shutil.copyfile(short_clip, dst / "old.mp4")
    entries = {e.rel: e for e in scan(src, dst)}
    assert set(entries) == {"sub/a.mp4", "escape.mp4", "inside.mp4"}
    assert entries["escape.mp4"].kind == "unsafe" and entries["escape.mp4"].dst is None
    assert entries["inside.mp4"].kind == "video" and entries["sub/a.mp4"].dst == (dst / "sub" / "a.mp4").resolve()


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".clip{TMP_MARK}{dead.stdout.strip()}.mp4"
    live = tmp_path / f".clip{TMP_MARK}{os.getpid()}.mp4"
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_manifest_survives_a_torn_last_line(tmp_path):
    m = Manifest(tmp_path)
    m.append({"input": "a.mp4", "status": "ok", "output": str(tmp_path / "a.mp4"), "output_bytes": 3})
    (tmp_path / "a.mp4").write_bytes(b"abc")
    with open(m.path, "a") as fh:
        fh.write('{"input": "b.mp4", "sta')  # killed mid-write
    again = Manifest(tmp_path)
    assert again.done("a.mp4") and "b.mp4" not in again.latest
    (tmp_path / "a.mp4").write_bytes(b"abcd")  # output changed since: not done
    assert not Manifest(tmp_path).done("a.mp4")


@pytest.mark.slow
def test_batch_resumes_after_kill_and_records_every_file_once(tmp_path, short_clip):
    src, dst = tmp_path / "archive", tmp_path / "anonymized"
    src.mkdir()
    kinds = make_tree(src, short_clip)
    assert len(kinds) >= 22

    # 1. one whole run: every good file done, the corrupt one failed with its reason, exit 12 (some failed)
    r = run_deid("batch", src, "-o", dst, "-q", "--json")
    assert r.returncode == 12, r.stderr
    summary = json.loads(r.stdout)
    assert summary["done"] == 20 and summary["failed"] == 1 and summary["ignored"] == 1
    first = records(dst)
    by_input = {x["input"]: x for x in first}
    assert by_input["broken.mp4"]["status"] == "failed" and "not a readable video" in by_input["broken.mp4"]["error"]
    assert by_input["broken.mp4"]["exit_code"] == 5 and not (dst / "broken.mp4").exists()
    assert "notes.txt" not in by_input and not (dst / "notes.txt").exists()
    ok = by_input["vidéos/été/clip 03.mp4"]
    assert ok["status"] == "ok" and ok["frames"] == 8 and ok["detections"]["face"] >= 8
    assert ok["input_sha256"] != ok["output_sha256"] and ok["versions"]["deid"] and ok["methods"]["face"]["name"]
    assert by_input["photos/no extension"]["output"].endswith("no extension.png")
    assert (dst / "deid-manifest.csv").read_text().count("\n") == 22  # header + 21 files

    # 2. a larger archive; kill -9 partway through, then resume
    for i in range(18, 30):
        shutil.copyfile(short_clip, src / "flight a" / f"late {i}.mp4")
    proc = subprocess.Popen([sys.executable, "-m", "deidcli", "batch", str(src), "-o", str(dst), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(records(dst)) < len(first) + 5 and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(records(dst))
    assert len(first) + 5 <= killed_at < len(first) + 12 + 1  # stopped partway
    time.sleep(0.5)  # the orphaned encoder notices its closed pipe and exits

    r = run_deid("batch", src, "-o", dst, "-q", "--json")
    assert r.returncode == 12, r.stderr
    resumed = json.loads(r.stdout)
    assert resumed["skipped"] == 20 + (killed_at - len(first) - 1)  # earlier files, and those before the kill
    everything = records(dst)
    oks = Counter(x["input"] for x in everything if x["status"] == "ok")
    good = [k for k, v in kinds.items() if v in ("video", "image")] + [f"flight a/late {i}.mp4" for i in range(18, 30)]
    assert sorted(oks) == sorted(good) and set(oks.values()) == {1}  # every good file done exactly once
    assert not [p for p in dst.rglob("*") if TMP_MARK in p.name]  # nothing partial left on disk
    for rel in good:
        out = Path(Manifest(dst).latest[rel]["output"])
        if rel.endswith(".mp4"):
            assert frames_of(out) == 8, rel


@pytest.mark.slow
def test_ray_engine_gives_the_same_manifest(tmp_path, short_clip):
    pytest.importorskip("ray")
    src = tmp_path / "archive"
    src.mkdir()
    make_tree(src, short_clip, copies=6)
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run_deid("batch", src, "-o", local, "-q").returncode == 12
    r = run_deid("batch", src, "-o", remote, "-q", "--engine", "ray", "--jobs", "2", timeout=900)
    assert r.returncode == 12, r.stderr

    def comparable(dst):
        out = {}
        for x in records(dst):
            x = {k: v for k, v in x.items() if k not in VOLATILE}
            x["output"] = x["output"] and Path(x["output"]).relative_to(dst.resolve()).as_posix()
            x.pop("input_path")
            out[x["input"]] = x
        return out

    a, b = comparable(local), comparable(remote)
    assert a.keys() == b.keys() and len(a) == 9
    for key in a:
        assert a[key] == b[key], key  # same outputs, byte for byte (same hashes), same figures


def test_run_fail_on_leak_gates_ci(tmp_path, short_clip):
    """A real anonymization passes the gate (exit 0, leak rate in the JSON); a faint one fails it (exit 11)."""
    r = run_deid("run", short_clip, "-o", tmp_path / "ok.mp4", "--fail-on-leak", "0", "--json", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["files"][0]["audit_leak_rate"] == 0.0
    r = run_deid("run", short_clip, "-o", tmp_path / "faint.mp4", "--method", "solid", "--strength", "0.05",
                 "--fail-on-leak", "0", "--json", "-q")
    assert r.returncode == 11
    assert json.loads(r.stdout)["files"][0]["audit_leak_rate"] > 0
    lines = [line for line in r.stderr.splitlines() if not line.startswith("deid: warning:")]  # strength 0.05 is weak
    assert len(lines) == 1 and "audit leak rate" in lines[0], r.stderr


def test_batch_errors_are_one_line(tmp_path):
    r = run_deid("batch", tmp_path / "missing", "-o", tmp_path / "out")
    assert r.returncode == 3 and r.stderr.count("\n") == 1
    r = run_deid("batch", tmp_path, "-o", tmp_path / "out", "--jobs", "0")
    assert r.returncode == 2 and "jobs" in r.stderr


def test_require_review_withholds_videos_until_approved(tmp_path, short_clip):
    """--require-review: videos wait in DEST/.deid-held (photos are published), the batch exits 17 and names
    them; once one is approved (deid review's record), the next run moves it into the tree with its detections
    and approval, records who approved it, and holds the other; a file changed after approval stays held."""
    from deidcli.review import approval

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "day").mkdir(parents=True)
    for name in ("a.mp4", "day/b.mp4"):
        shutil.copyfile(short_clip, src / name)
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(src / "still.png")
    r = run_deid("batch", src, "-o", dst, "--require-review", "--json", "-q")
    assert r.returncode == 17, r.stderr
    summary = json.loads(r.stdout)
    assert summary["exit_code"] == 17 and sorted(h["input"] for h in summary["held"]) == ["a.mp4", "day/b.mp4"]
    assert not (dst / "a.mp4").exists() and not (dst / "day/b.mp4").exists() and (dst / "still.png").is_file()
    held_a, held_b = dst / ".deid-held/a.mp4", dst / ".deid-held/day/b.mp4"
    assert held_a.is_file() and (dst / ".deid-held/a.mp4.detections.jsonl").is_file()

    approval.approve(held_a, edits=0, user="reviewer")
    approval.approve(held_b, edits=0, user="reviewer")
    held_b.write_bytes(held_b.read_bytes() + b"\0")  # changed after approval: that approval no longer holds
    r = run_deid("batch", src, "-o", dst, "--require-review", "--json", "-q")
    assert r.returncode == 17, r.stderr
    summary = json.loads(r.stdout)
    assert summary["published"] == 1 and [h["input"] for h in summary["held"]] == ["day/b.mp4"]
    assert (dst / "a.mp4").is_file() and not held_a.exists()
    assert approval.approved(dst / "a.mp4")["approved_by"] == "reviewer"
    assert (dst / "a.mp4.detections.jsonl").is_file()
    latest = Manifest(dst).latest
    assert latest["a.mp4"]["review"] == "approved" and latest["a.mp4"]["approved_by"] == "reviewer"
    assert latest["a.mp4"]["output"] == str(dst / "a.mp4") and latest["day/b.mp4"]["review"] == "pending"
    assert not (dst / "day/b.mp4").exists()

    approval.approve(held_b, edits=1, user="reviewer")
    r = run_deid("batch", src, "-o", dst, "--require-review", "-q")
    assert r.returncode == 0, r.stderr
    assert (dst / "day/b.mp4").is_file() and Manifest(dst).latest["day/b.mp4"]["review_edits"] == 1
