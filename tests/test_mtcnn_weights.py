"""MTCNN without facenet-pytorch: our nets give facenet-pytorch's boxes, and its weights ship inside deid (byte for
byte its wheel's, checked by SHA-256 on load: nothing to fetch)."""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import replace

import numpy as np
import pytest
from skimage import data

from conftest import ROOT, sha256
from deidcli.detection import mtcnn_nets
from deidcli.errors import ModelUnavailableError


def test_the_shipped_files_are_facenet_pytorchs_and_in_the_wheel():
    """The digests of facenet_pytorch/data/{pnet,rnet,onet}.pt in facenet_pytorch-2.6.0-py3-none-any.whl (SHA-256
    ecb82b27...), and package-data takes them and their licence into deid's wheel."""
    pinned = {"mtcnn_pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
              "mtcnn_rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
              "mtcnn_onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"}
    data_dir = ROOT / "deidcli" / "detection" / "data"
    assert {s.resource.rsplit("/", 1)[1]: s.sha256 for s in mtcnn_nets.MTCNN_WEIGHTS} == pinned
    assert {name: sha256(data_dir / name) for name in pinned} == pinned
    licence = (data_dir / "mtcnn.LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) 2019 Timothy Esler" in licence
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["deidcli"]
    for name in [s.resource for s in mtcnn_nets.MTCNN_WEIGHTS] + ["detection/data/mtcnn.LICENSE"]:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


def test_a_changed_file_is_refused(monkeypatch):
    pnet, *rest = mtcnn_nets.MTCNN_WEIGHTS
    monkeypatch.setattr(mtcnn_nets, "MTCNN_WEIGHTS", (replace(pnet, sha256="0" * 64), *rest))
    with pytest.raises(ModelUnavailableError, match=r"mtcnn: .*mtcnn_pnet\.pt is not the pinned MTCNN PNet"):
        mtcnn_nets.load_nets()


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
