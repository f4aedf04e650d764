"""The adversarial whole-frame methods checked on the video as encoded, before it is published.

De-detection changes a face by a few grey levels, made for the 8-bit frame; the encoder quantizes part of that away.
On a 4-frame clip at crf 18 MTCNN found the face again in 2 of the 4 frames written, though it found none in the
frames deid handed the encoder; a stand-in encode of each frame on its own (libx264, 6 quantizer steps coarser)
did not predict which (a P frame is coded from its neighbours). So the file itself is decoded and every face a
frame method was given is looked for again with that method's own detector, as the method's stopping rule does;
one found is a failure of the whole file, and nothing is published (fail closed, :class:`MethodFailedError`).
x264 at ``--crf 0`` (lossless) kept all 4 frames of that clip hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from deidcli.detections import box_iou
from deidcli.errors import MethodFailedError

FOUND_IOU = 0.3  # the overlap at which the method's own stopping rule counts a detection as the face


@dataclass
class StoredCheck:
    """Faces given to a whole-frame method, by frame index, with the detector the method must hide them from."""

    boxes: dict[int, list[tuple[str, object, np.ndarray]]] = field(default_factory=dict)

    def add(self, index: int, method: str, detector, xyxy: np.ndarray) -> None:
        self.boxes.setdefault(index, []).append((method, detector, np.asarray(xyxy, dtype=np.float32).copy()))

    def __len__(self) -> int:
        return sum(len(b) for entries in self.boxes.values() for _, _, b in entries)

    def found_again(self, path: Path) -> tuple[int, int]:
        """(faces found again, faces checked) in the first video stream of the encoded file at ``path``."""
        found = 0
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                for _, detector, xyxy in self.boxes.get(index, ()):
                    dets = detector.detect(frame.to_ndarray(format="rgb24"), 1.0)
                    if len(dets):
                        found += int((box_iou(dets.xyxy, xyxy) >= FOUND_IOU).any(0).sum())
        return found, len(self)

    def verify(self, path: Path) -> str:
        """Raise :class:`MethodFailedError` when a face is found again in ``path``; else a note for the report."""
        if not self.boxes:
            return ""
        found, total = self.found_again(path)
        methods = sorted({m for entries in self.boxes.values() for m, _, _ in entries})
        if found:
            raise MethodFailedError(
                f"{'/'.join(methods)}: the face detector finds {found} of {total} faces again in the encoded video "
                f"(the encoder quantized the change away); nothing written: encode losslessly (--crf 0) or use "
                f"another method")
        return f"{'/'.join(methods)}: checked in the encoded video, none of {total} faces found again"
