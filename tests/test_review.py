"""deid review: corrections as data, the server's guards, and a whole review clicked through in a real browser."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import statistics
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import SAMPLE, ffmpeg, run_deid, shared
from deidcli.detections import Detections
from deidcli.detections_io import detections_path
from deidcli.review import approval
from deidcli.review.corrections import ADDED_IDS, Corrections


# --- corrections as data ------------------------------------------------------------------------------------------


def _dets(boxes, ids):
    return Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes)), tracker_id=ids)


def test_corrections_delete_trim_keep_and_add_apply_frame_by_frame(tmp_path):
    c = Corrections("clip.mp4", 640, 360, 10)
    known = {1, 2, 3}
    c.edit("delete", 1, known)
    c.edit("trim", 2, known, first=3, last=5)
    c.edit("keep", 3, known)
    tid = c.add({4: np.array([10, 10, 50, 60]), 5: np.array([12, 10, 52, 60])}, "plate")
    assert tid == ADDED_IDS
    frame = _dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60], [100, 100, 120, 120]], [1, 2, 3, -1])
    assert c.apply(2, frame).tracker_id.tolist() == [-1]  # 2 is outside its span, 1 deleted, 3 kept visible
    at4 = c.apply(4, frame)
    assert at4.tracker_id.tolist() == [2, -1, tid] and at4.class_id.tolist() == [0, 0, 2]
    assert at4.xyxy[-1].tolist() == [10, 10, 50, 60] and at4.confidence[-1] == 1.0
    path = tmp_path / "c.json"
    c.save(path)
    again = Corrections.load(path)
    assert again.edits == c.edits and again.apply(5, frame).tracker_id.tolist() == [2, -1, tid]
    assert again.summary() == "1 track(s) added, 1 deleted, 1 trimmed, 1 kept visible (consented)"
    assert again.undo()["op"] == "add" and again.apply(5, frame).tracker_id.tolist() == [2, -1]


@pytest.mark.parametrize("edit, why", [
    ({"op": "rename", "track_id": 1}, "unknown edit"),
    ({"op": "trim", "track_id": 1, "first": 5, "last": 2}, "first <= last"),
    ({"op": "add", "track_id": 9, "target": "face", "boxes": {"3": [50, 50, 40, 60]}}, "empty or outside"),
    ({"op": "add", "track_id": 9, "target": "face", "boxes": {"99": [1, 1, 5, 5]}}, "not in the video"),
    ({"op": "add", "track_id": 9, "target": "tree", "boxes": {"1": [1, 1, 5, 5]}}, "target must be"),
])
def test_a_bad_edit_is_refused_by_name(edit, why):
    with pytest.raises(ValueError, match=why):
        Corrections("clip.mp4", 640, 360, 10)._check(edit)


def test_an_edit_to_a_track_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="no track 7"):
        Corrections("clip.mp4", 640, 360, 10).edit("delete", 7, {1, 2})


def test_a_file_that_is_not_corrections_is_one_line(tmp_path):
    from deidcli.errors import InvalidMediaError

    bad = tmp_path / "c.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(InvalidMediaError, match="not a deid corrections file"):
        Corrections.load(bad)


def test_the_visual_tracker_follows_a_moving_patch_and_stops_where_it_leaves():
    from deidcli.tracking.visual import carry

    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) // 4
    patch = cv2.resize(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8), (40, 40), interpolation=cv2.INTER_CUBIC)
    frames = []
    for k in range(40):  # moves 8 px right a frame: out of the picture by frame 36
        f = background.copy()
        x = 20 + 8 * k
        visible = max(0, min(40, 320 - x))
        f[100:140, x:x + visible] = patch[:, :visible]
        frames.append(f)
    boxes = carry(frames, np.array([20, 100, 60, 140]))
    # MIL samples at random, from a generator of its own (cv2.setRNGSeed does not make two runs agree): alone it
    # held 33-34 frames, once in the whole suite 20
    assert 15 <= len(boxes) <= 37
    assert all(abs(b[0] - (20 + 8 * k)) <= 8 for k, b in enumerate(boxes[:15]))  # within a fifth of its side


# --- the sign-off and the server's guards -------------------------------------------------------------------------


def test_approval_is_of_these_bytes_only(tmp_path):
    out = tmp_path / "clip_anonymized.mp4"
    out.write_bytes(b"video")
    record = approval.approve(out, edits=3, user="alice")
    assert approval.approved(out) == record and record["edits"] == 3 and record["approved_by"] == "alice"
    out.write_bytes(b"video, rendered again")
    assert approval.approved(out) is None


@pytest.fixture(scope="module")
def small_review(tmp_path_factory):
    """The sample's first 12 frames rendered with --keep-detections, and a review server on it."""
    from deidcli.review.server import ReviewServer
    from deidcli.review.session import ReviewSession

    d = tmp_path_factory.mktemp("review")
    clip, out = d / "clip.mp4", d / "clip_anonymized.mp4"
    ffmpeg("-i", str(SAMPLE), "-frames:v", "12", "-c:v", "libx264", "-crf", "18", "-an", str(clip))
    r = run_deid("run", clip, "--keep-detections", "-q")
    assert r.returncode == 0, r.stderr
    session = ReviewSession(clip, out, detections_path(out), {"face": "frost"})
    server = ReviewServer(session)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    session.close()


def _request(server, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url.rstrip("/") + path, data=data, headers=headers or {},
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_server_answers_its_own_page_only(small_review):
    server = small_review
    own = {"Origin": f"http://127.0.0.1:{server.port}", "Content-Type": "application/json"}
    status, body = _request(server, "/api/state")
    assert status == 200 and json.loads(body)["video"]["frames"] == 12
    status, body = _request(server, "/frame.jpg?n=11")
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert _request(server, "/frame.jpg?n=12")[0] == 404
    assert _request(server, "/../../etc/passwd")[0] == 404
    assert _request(server, "/frame.jpg?n=1&video=/etc/passwd")[0] == 404
    assert _request(server, "/api/state", headers={"Host": "evil.example"})[0] == 403
    assert _request(server, "/api/state", headers={"Origin": "http://evil.example"})[0] == 403
    tid = next(t["track_id"] for t in json.loads(_request(server, "/api/state")[1])["tracks"] if t["track_id"] >= 0)
    edit = {"op": "keep", "track_id": tid}
    assert _request(server, "/api/edit", edit, {"Content-Type": "application/json"})[0] == 403  # no Origin
    assert _request(server, "/api/edit", edit, {**own, "Origin": "http://evil.example"})[0] == 403
    assert _request(server, "/api/edit", edit, {**own, "Content-Type": "text/plain"})[0] == 403
    assert _request(server, "/api/edit", {"op": "keep", "track_id": 424242}, own)[0] == 400
    assert _request(server, "/api/edit", edit, own)[0] == 200
    assert server.session.corrections.edits == [edit]
    assert _request(server, "/api/undo", {}, own)[0] == 200 and server.session.corrections.edits == []


# --- a whole review in a real browser -----------------------------------------------------------------------------


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make install installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1700,1100",
                "--disable-gpu"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _region(image: np.ndarray, box) -> np.ndarray:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return image[max(0, y1):y2, max(0, x1):x2].astype(np.float32)


@pytest.mark.slow
def test_a_whole_review_in_chromium(tmp_path):
    """Open, step, draw a box round a face the detector was told to miss, delete a false track, re-render,
    approve; then the corrections file, the output (the added face hidden in every frame of its track, the deleted
    region back to the source's pixels) and the approval record are checked, and the audit finds no leak."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from deidcli.audit import audit_output
    from deidcli.detections_io import read_detections
    from deidcli.review.server import ReviewServer
    from deidcli.review.session import ReviewSession

    source = shared("videos", "street_faces_1080p.mp4")
    clip, out = tmp_path / "street.mp4", tmp_path / "street_anonymized.mp4"
    ffmpeg("-i", str(source), "-frames:v", "20", "-c:v", "libx264", "-crf", "18", "-an", str(clip))
    assert run_deid("run", clip, "--keep-detections", "-q").returncode == 0
    dets_file = detections_path(out)
    lines = dets_file.read_text().splitlines()
    frames = [json.loads(line) for line in lines[1:]]
    # The detector "misses" the biggest face of the clip, and "finds" a face on a wall (a false track)
    sizes: dict[int, float] = {}
    for f in frames:
        for d in f["detections"]:
            if d["track_id"] >= 0:
                b = d["box"]
                sizes[d["track_id"]] = sizes.get(d["track_id"], 0) + (b[2] - b[0]) * (b[3] - b[1])
    everywhere = [t for t in sizes if all(any(d["track_id"] == t for d in f["detections"]) for f in frames)]
    missed = max(everywhere, key=sizes.get)
    drawn = next(d["box"] for d in frames[3]["detections"] if d["track_id"] == missed)
    wall = [60.0, 60.0, 160.0, 180.0]
    for f in frames:
        f["detections"] = [d for d in f["detections"] if d["track_id"] != missed]
        f["detections"].append({"box": wall, "score": 0.9, "class_id": 0, "track_id": 999})
    dets_file.write_text("\n".join([lines[0]] + [json.dumps(f) for f in frames]) + "\n")
    assert run_deid("run", clip, "-o", out, "--detections", dets_file, "--overwrite", "-q").returncode == 0

    session = ReviewSession(clip, out, dets_file, {"face": "frost"})
    server = ReviewServer(session)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = _browser()
    shots = Path(os.environ.get("DEID_REVIEW_SHOTS", tmp_path))
    try:
        browser.get(server.url)
        body = browser.find_element(By.TAG_NAME, "body")
        wait = WebDriverWait(browser, 120, poll_frequency=0.01)  # the step timing is no coarser than this

        def on(attribute: str, value: str) -> None:
            wait.until(lambda _: body.get_attribute(f"data-{attribute}") == value)

        on("frame", "0")
        steps = []
        for n in range(1, 13):  # keys: step on 12 frames, timing each until picture and outlines are shown
            t = time.perf_counter()
            body.send_keys(Keys.ARROW_RIGHT)
            on("frame", str(n))
            steps.append(time.perf_counter() - t)
        body.send_keys(Keys.SHIFT, Keys.ARROW_LEFT)
        on("frame", "2")
        browser.find_element(By.ID, "next").click()
        on("frame", "3")
        print(f"frame step in the browser: median {statistics.median(steps) * 1000:.0f} ms, "
              f"worst {max(steps) * 1000:.0f} ms")

        overlay = browser.find_element(By.ID, "overlay")
        s = overlay.size["width"] / 1920
        x1, y1, x2, y2 = (v * s for v in drawn)
        cx, cy = overlay.size["width"] / 2, overlay.size["height"] / 2
        browser.find_element(By.ID, "draw").click()
        (ActionChains(browser).move_to_element_with_offset(overlay, round(x1 - cx), round(y1 - cy)).click_and_hold()
         .move_by_offset(round(x2 - x1), round(y2 - y1)).release().perform())
        on("edits", "1")
        browser.save_screenshot(str(shots / "review-added.png"))
        row = browser.find_element(By.CSS_SELECTOR, "#tracks tr[data-track='999']")
        row.find_element(By.XPATH, ".//button[text()='delete']").click()
        on("edits", "2")
        assert browser.find_element(By.ID, "stale").is_displayed()

        assert run_deid(*shlex.split(session.rerender_command())[1:]).returncode == 0  # the command it shows
        browser.refresh()
        body = browser.find_element(By.TAG_NAME, "body")
        on("frame", "0")
        browser.find_element(By.ID, "approve").click()
        on("approved", "yes")
        browser.save_screenshot(str(shots / "review-approved.png"))
    finally:
        browser.quit()
        server.shutdown()
        server.server_close()
        session.close()

    edits = json.loads(session.corrections_path.read_text())["edits"]
    assert [e["op"] for e in edits] == ["add", "delete"] and edits[1]["track_id"] == 999
    added = {int(k): v for k, v in edits[0]["boxes"].items()}
    assert edits[0]["drawn_at"] == 3 and set(added) == set(range(20))  # carried to both ends of the clip
    stored = list(read_detections(dets_file, 1920, 1080))
    source_frames, written = _frames(clip), _frames(out)
    for n, box in added.items():
        before, after = _region(source_frames[n], box), _region(written[n], box)
        assert np.abs(before - after).mean() > 8, f"frame {n}: the added face is not hidden"
        over_wall = [b for b, t in zip(stored[n].xyxy, stored[n].tracker_id) if t != 999
                     and b[0] < wall[2] and b[2] > wall[0] and b[1] < wall[3] and b[3] > wall[1]]
        if not over_wall:
            assert np.abs(_region(source_frames[n], wall) - _region(written[n], wall)).mean() < 3
    record = approval.approved(out)
    assert record is not None and record["approved_by"] == getpass.getuser() and record["edits"] == 2
    assert audit_output(clip, out).leaks == []


def test_one_track_gets_a_method_of_its_own(tmp_path):
    """A reviewer's `method` edit: that track is rendered with its own method (solid, black) while the target's
    method (frost) stays for the rest; a face-only method is refused for a plate."""
    from deidcli.detections_io import read_detections

    clip, out = tmp_path / "clip.mp4", tmp_path / "clip_anonymized.mp4"
    ffmpeg("-i", str(SAMPLE), "-frames:v", "6", "-c:v", "libx264", "-crf", "18", "-an", str(clip))
    assert run_deid("run", clip, "--keep-detections", "-q").returncode == 0
    dets = list(read_detections(detections_path(out), 640, 360))
    tid = int(dets[0].tracker_id[0])
    c = Corrections("clip.mp4", 640, 360, 6)
    c.edit("method", tid, {tid}, method="solid", target="face")
    with pytest.raises(ValueError, match="hides faces only"):
        c.edit("method", tid, {tid}, method="dedetect", target="plate")
    c.save(tmp_path / "c.json")
    r = run_deid("run", clip, "-o", out, "--detections", detections_path(out), "--corrections", tmp_path / "c.json",
                 "--color", "black", "--overwrite", "-q", "--json")
    assert r.returncode == 0, r.stderr
    assert "corrections applied: 1 given their own method" in json.loads(r.stdout)["files"][0]["notes"]
    for frame, d in zip(_frames(out), dets):
        x1, y1, x2, y2 = d.xyxy[0]
        centre = frame[int((y1 + y2) / 2) - 5:int((y1 + y2) / 2) + 5, int((x1 + x2) / 2) - 5:int((x1 + x2) / 2) + 5]
        assert centre.mean() < 20  # solid black, not frost's grey grain


def test_deid_review_serves_the_page_and_names_what_is_missing(small_review, tmp_path):
    """The command: without regions to review it says how to make them (exit 3); with them it prints the page's
    address, serves it, and Ctrl+C ends it."""
    import signal
    import subprocess
    import sys

    session = small_review.session
    lonely = tmp_path / "lonely.mp4"
    shutil.copyfile(session.original, lonely)
    shutil.copyfile(session.anonymized, tmp_path / "lonely_anonymized.mp4")
    r = run_deid("review", lonely, "--no-browser")
    assert r.returncode == 3 and "--keep-detections" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    proc = subprocess.Popen([sys.executable, "-m", "deidcli", "review", str(session.original), "--no-browser"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith("deid review: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/state", timeout=30) as resp:
            assert json.loads(resp.read())["video"]["frames"] == 12
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert b"deid review" in resp.read()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130  # 30 s was not enough once, on a machine running two suites
