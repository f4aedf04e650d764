"""YOLOX-nano, the default body and vehicle model: the file inside the package, its decoder on the real network,
its place in the anonymizer (one pass for both targets, tiles) and `deid run` with nothing cached or downloadable."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import ROOT, ffmpeg, run_deid, sha256, shared
from deidcli.config import DeidConfig
from deidcli.detection import yolox
from deidcli.detection.yolo import VEHICLES
from deidcli.detections import box_iou
from deidcli.errors import ModelUnavailableError

SPEC = yolox.YOLOX_MODELS["yolox-nano"]
PERSON = ("persons", "coco_000000000785.jpg")  # one skier, labelled 280.79,44.73 218.7x346.68 in boxes.csv
PERSON_BOX = np.array([[280.79, 44.73, 280.79 + 218.7, 44.73 + 346.68]])


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> yolox.YoloxNet:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEID_CACHE", str(tmp_path_factory.mktemp("cache")))  # the any-size graph is kept there
        yield yolox.YoloxNet()


def _rgb(*parts: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(shared(*parts))), cv2.COLOR_BGR2RGB)


def test_the_shipped_file_is_the_pinned_one_and_in_the_wheel():
    path = ROOT / "deidcli" / SPEC.resource
    assert sha256(path) == SPEC.sha256 == "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
    assert path.stat().st_size == 3_660_092
    assert "Apache License" in (path.parent / "yolox_nano.LICENSE").read_text()
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["deidcli"]
    for name in (SPEC.resource, "detection/data/yolox_nano.LICENSE"):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


def test_a_changed_file_is_refused(monkeypatch):
    monkeypatch.setitem(yolox.YOLOX_MODELS, "yolox-nano", replace(SPEC, sha256="0" * 64))
    with pytest.raises(ModelUnavailableError, match="--body-model yolox-nano: .* not the pinned YOLOX-nano"):
        yolox.YoloxNet()


def test_decode_places_a_box_by_its_cell_and_stride():
    cells, strides = yolox.anchor_grid((416, 416))
    assert len(cells) == 52 * 52 + 26 * 26 + 13 * 13 == 3549
    raw = np.zeros((3549, 85), np.float32)
    i = 52 * 52 + 26 * 3 + 5  # stride 16, row 3, column 5
    raw[i, :4] = [0.5, 0.25, np.log(2), np.log(4)]  # centre (5.5, 3.25) cells; 2 x 4 strides
    raw[i, 4], raw[i, 5 + 2] = 0.9, 0.5  # objectness, "car"
    boxes, scores = yolox.decode(raw, cells, strides, 0.5, 1000, 1000)  # the picture was shrunk by half
    assert np.allclose(boxes[i], [(88 - 16) / 0.5, (52 - 32) / 0.5, (88 + 16) / 0.5, (52 + 32) / 0.5])
    assert scores.shape == (3549, 80) and scores[i, 2] == pytest.approx(0.45) and scores[i].sum() == pytest.approx(0.45)


def test_letterbox_keeps_the_aspect_and_pads_grey_in_bgr():
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0] = 255  # red
    blob, ratio = yolox.letterbox(image, (96, 160))
    assert blob.shape == (1, 3, 96, 160) and ratio == pytest.approx(0.8)
    assert blob[0, 2, 0, 0] == 255 and blob[0, 0, 0, 0] == 0, "red goes to the last (BGR) channel"
    assert (blob[0, :, 80:, :] == yolox.PAD).all(), "rows below the picture are padding"
    assert yolox.input_size(1920, 1080, 960) == (544, 960) and yolox.input_size(640, 425, 416) == (288, 416)


def test_the_any_size_graph_gives_the_shipped_outputs_at_416(net):
    import onnxruntime as ort

    shipped = ort.InferenceSession(str(ROOT / "deidcli" / SPEC.resource), providers=["CPUExecutionProvider"])
    blob = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    assert np.abs(shipped.run(None, {"images": blob})[0] - net.session.run(None, {"images": blob})[0]).max() < 1e-4
    assert net.session.run(None, {"images": blob[:, :, :288, :]})[0].shape == (1, 36 * 52 + 18 * 26 + 9 * 13, 85)


def test_a_person_photo_gives_its_person(net):
    image = _rgb(*PERSON)
    bodies = yolox.YoloxDetector(net=net).detect(image)
    best = int(np.argmax(bodies.confidence))
    assert box_iou(bodies.xyxy[best:best + 1], PERSON_BOX)[0, 0] > 0.8 and bodies.confidence[best] > 0.5
    # at the low default threshold a 4 x 6 px flag inside the skier's box scores 0.16; nothing else scores
    assert (np.delete(bodies.confidence, best) < 0.3).all()
    assert len(yolox.YoloxDetector(wanted=VEHICLES, net=net).detect(image)) == 0


def test_tiles_find_the_person_where_it_is_in_a_large_frame(net):
    """A frame over twice max_side is also cut into tiles (anonymizer.tiled): boxes come back in its pixels."""
    from deidcli.anonymizer import tiled

    image = _rgb(*PERSON)
    frame = np.full((2400, 3000, 3), 90, np.uint8)
    frame[1500:1500 + image.shape[0], 2200:2200 + image.shape[1]] = image
    det = tiled(yolox.YoloxDetector(net=net), "body", DeidConfig())
    assert det.tiles(3000, 2400)
    bodies = det.detect(frame)
    best = int(np.argmax(bodies.confidence))
    assert box_iou(bodies.xyxy[best:best + 1], PERSON_BOX + [2200, 1500, 2200, 1500])[0, 0] > 0.7


def test_bodies_and_vehicles_share_one_pass(tmp_path, monkeypatch):
    from deidcli.anonymizer import FrameAnonymizer

    monkeypatch.setenv("DEID_CACHE", str(tmp_path))
    anonymizer = FrameAnonymizer.from_config(DeidConfig().with_overrides(targets="body,vehicle", tile="off"))
    body, vehicle = anonymizer.detectors["body"], anonymizer.detectors["vehicle"]
    assert body.net is vehicle.net and body.name == "yolox-nano" and body.threshold == yolox.YOLOX_THRESHOLD
    calls = []
    run = body.net.session.run
    monkeypatch.setattr(body.net, "session", type("S", (), {"run": lambda s, *a: calls.append(1) or run(*a)})())
    anonymizer.detect(np.zeros((96, 128, 3), np.uint8))
    assert len(calls) == 1


def test_run_finds_the_astronaut_with_an_empty_home_and_no_network(tmp_path, sample):
    """A fresh install offline: nothing cached, nothing downloadable, and bodies and vehicles still run."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "DEID_CACHE": str(home / ".cache" / "deid"), "TORCH_HOME": str(home / "torch"),
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    clip, report = tmp_path / "clip.mp4", tmp_path / "r.json"
    ffmpeg("-i", str(sample), "-frames:v", "8", str(clip))
    r = run_deid("run", clip, "-o", tmp_path / "out.mp4", "--targets", "body,vehicle", "--report", report, "--quiet",
                 env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(report.read_text())
    assert rep["targets"] == ["body", "vehicle"] and rep["files"][0]["detections_by_target"]["body"] > 0
    models = [p.name for p in (home / ".cache" / "deid" / "models").iterdir()]
    assert models == [f"yolox_nano-{SPEC.sha256[:16]}-ort.onnx"], "only the any-size graph, nothing fetched"
    assert not list(home.rglob("*.pth"))


def test_recall_on_the_labelled_persons_and_vehicles(net):
    """The figures bench/coco_recall.py prints for the default threshold (docs/how-it-works.md): ground-level people
    found, people and cars seen from straight above not (a COCO model's limit, not a bug to fix here)."""
    from deidcli.anonymizer import tiled
    from deidcli.evaluation.recall import load_boxes, recall_by_image

    cfg = DeidConfig()
    persons, videos = shared("persons"), shared("videos")
    body = tiled(yolox.YoloxDetector(net=net), "body", cfg)
    found = recall_by_image(body, load_boxes(persons / "boxes.csv"), persons)
    ground = sum(r.found for name, r in found.items() if not name.startswith("stanford"))
    aerial = sum(r.found for name, r in found.items() if name.startswith("stanford"))
    assert ground >= 23 and aerial <= 1, (ground, aerial)  # of 24 and 16
    cars = {k: v for k, v in load_boxes(ROOT / "bench" / "data" / "vehicles.csv").items() if k.startswith("highway")}
    vehicle = tiled(yolox.YoloxDetector(wanted=VEHICLES, net=net), "vehicle", cfg)
    assert sum(r.found for r in recall_by_image(vehicle, cars, videos).values()) >= 16  # of 20
