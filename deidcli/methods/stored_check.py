"""The adversarial methods checked on the video as encoded, before it is published.

De-detection changes a face by a few grey levels, made for the 8-bit frame; the encoder quantizes part of that away.
On a 4-frame clip at crf 18 MTCNN found the face again in 2 of the 4 frames written, though it found none in the
frames deid handed the encoder; a stand-in encode of each frame on its own (libx264, 6 quantizer steps coarser)
did not predict which (a P frame is coded from its neighbours); and I-FGVM's FaceNet distance of 1.0 fell to
0.72-0.87 in the same file. So the file itself is decoded and every face such a method was given is probed in
its frame, as the method's own goal is judged (``Method.stored_probe``: de-detection's detector finds it, FaceNet on
its own crop at the box still matches it); one missed is a failure of the whole file, and nothing is published
(fail closed, :class:`MethodFailedError`).
x264 at ``--crf 0`` (lossless) kept all 4 frames of that clip hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from deidcli.errors import MethodFailedError
from deidcli.video.reader import to_rgb

# ``probe(written frame) -> (N,) bool``: the faces whose goal a written frame misses (Method.stored_probe)
Probe = Callable[[np.ndarray], np.ndarray]


@dataclass
class StoredCheck:
    """The probes of the faces given to a method an encoder can undo, by the index of the frame written."""

    probes: dict[int, list[tuple[str, Probe, int]]] = field(default_factory=dict)

    def add(self, index: int, method: str, probe: Probe, faces: int) -> None:
        self.probes.setdefault(index, []).append((method, probe, faces))

    def __len__(self) -> int:
        return sum(n for entries in self.probes.values() for _, _, n in entries)

    def found_again(self, path: Path) -> tuple[int, int]:
        """(faces whose goal the encoded file misses, faces checked), in the first video stream at ``path``."""
        missed = 0
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                entries = self.probes.get(index, ())
                if entries:
                    picture = to_rgb(frame)  # with the frame's own matrix, as the reader gave the method its frame
                    missed += sum(int(np.asarray(probe(picture)).sum()) for _, probe, _ in entries)
        return missed, len(self)

    def verify(self, path: Path) -> str:
        """Raise :class:`MethodFailedError` when a face's goal is missed in ``path``; else a note for the report."""
        if not self.probes:
            return ""
        missed, total = self.found_again(path)
        methods = "/".join(sorted({m for entries in self.probes.values() for m, _, _ in entries}))
        if missed:
            raise MethodFailedError(
                f"{methods}: {missed} of {total} faces are found or matched again in the encoded video (the "
                f"encoder quantized the change away); nothing written: encode losslessly (--crf 0) or use "
                f"another method")
        return f"{methods}: checked in the encoded video, none of {total} faces found or matched again"
