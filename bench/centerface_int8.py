"""CenterFace quantized to int8 against the float model deid ships: speed at 960 px and recall (why it is not used).

    python bench/centerface_int8.py

Static QDQ quantization with onnxruntime (weights int8 per channel, activations uint8), calibrated on every other
photo of shared/data/identities at deid's inference size; recall measured on shared/data/faces_annotated (not
used to calibrate) at full size, 1/2 and 1/4, as `make recall` does; speed on the first 10 frames of
street_faces_1080p.mp4 at 960x544, one and two threads. The quantized graph lives in a temporary folder (and its
runtime copy in deid's model cache, as any model given with --model would).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector_recall import FOLDER, per_face  # noqa: E402

from deidcli.detection.centerface import CenterFace, default_model_path, runtime_model  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def blob(image: np.ndarray, max_side: int = 960) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (int(np.ceil(w * s / 32) * 32), int(np.ceil(h * s / 32) * 32))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA).transpose(2, 0, 1)[None].astype(np.float32)


class Photos(CalibrationDataReader):
    def __init__(self, files: list[Path]) -> None:
        self.it = ({"input.1": blob(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB))} for f in files)

    def get_next(self):
        return next(self.it, None)


def quantized(folder: Path) -> Path:
    # Per-channel QDQ needs opset 13; the shipped graph is older.
    model = version_converter.convert_version(onnx.load(runtime_model(default_model_path())), 13)
    onnx.save(model, folder / "cf13.onnx")
    quant_pre_process(folder / "cf13.onnx", folder / "pre.onnx", skip_symbolic_shape=True)
    out = folder / "int8.onnx"
    quantize_static(folder / "pre.onnx", out, Photos(sorted((SHARED / "identities").glob("*.jpg"))[::2]),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    return out


def ms_per_frame(path: str, threads: int, blobs: list[np.ndarray]) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    session.run(None, {"input.1": blobs[0]})
    t = time.perf_counter()
    for b in blobs:
        session.run(None, {"input.1": b})
    return 1000 * (time.perf_counter() - t) / len(blobs)


def main() -> None:
    if not FOLDER.exists():
        sys.exit(f"needs {FOLDER}")
    ort.set_default_logger_severity(3)
    with av.open(str(SHARED / "videos" / "street_faces_1080p.mp4")) as c:
        blobs = [blob(f.to_ndarray(format="rgb24")) for _, f in zip(range(10), c.decode(video=0))]
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantized(Path(tmp))
        for name, path in (("float32 (shipped)", None), ("int8", int8)):
            det = CenterFace(model_path=path)
            recall = [sum(f for _, f in per_face(det, FOLDER, ds, 1.0)) for ds in (1.0, 0.5, 0.25)]
            speed = [ms_per_frame(str(path or runtime_model(default_model_path())), t, blobs) for t in (1, 2)]
            print(f"{name}: faces found at 1, 1/2, 1/4: {recall} of 18 each; "
                  f"{speed[0]:.0f} ms a frame on 1 thread, {speed[1]:.0f} on 2")


if __name__ == "__main__":
    main()
