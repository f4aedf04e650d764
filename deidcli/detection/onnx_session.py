"""How every ONNX detector opens its onnxruntime session: the same threads and idle behaviour, and a shipped graph
made fit to run (:func:`cached_graph`) once, not at every start-up."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2

from deidcli.weights import cache_dir, keep_file


def ort_session(model: str | bytes, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` of ``model`` (a path or the graph's bytes), on CUDA where asked for and
    available, else on the CPU."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    opts = ort.SessionOptions()
    # OpenCV's thread count is what a batch worker is given as its share of the cores (batch/worker.py).
    opts.intra_op_num_threads = max(1, cv2.getNumThreads())
    # Idle threads sleep instead of spinning: the decoder, the anonymizer and the encoder share these cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model, opts, providers=providers)


def cached_graph(path: Path, fix: Callable[[Path], bytes], sha256: str | None = None) -> str | bytes:
    """``fix(path)``, the graph at ``path`` as onnxruntime should run it, kept in the models cache
    (``weights.cache_dir``) under the source's SHA-256 (``sha256`` where the caller already knows it) so later runs
    load it without importing onnx (0.6 s of every start-up); the bytes themselves where the cache cannot be
    written."""
    digest = (sha256 or hashlib.sha256(path.read_bytes()).hexdigest())[:16]
    cached = cache_dir() / f"{path.stem}-{digest}-ort.onnx"
    if cached.is_file():
        return str(cached)
    data = fix(path)
    try:
        keep_file(cached, data)
    except OSError:
        return data
    return str(cached)
