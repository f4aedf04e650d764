"""Track ids for the ``Detections`` of consecutive frames, from ByteTrack (``deidcli.tracking.bytetrack``).

Only the ids come from the tracker. Which boxes get anonymized is decided elsewhere: every raw detection is
anonymized whether or not the tracker has confirmed it (Ultralytics' own blurrer skips unconfirmed tracks).
"""

from __future__ import annotations

import numpy as np

from deidcli.detections import Detections
from deidcli.tracking.bytetrack import ByteTrack


class ByteTracker:
    """Assigns a track id to each detection of each frame (``-1`` while the tracker has no track for it)."""

    def __init__(self, frame_rate: float = 30.0, low_threshold: float = 0.1, high_threshold: float = 0.25) -> None:
        # lost tracks are kept for about a second, whatever the frame rate
        self._tracker = ByteTrack(frame_rate, low_threshold, high_threshold, lost_seconds=1.0)

    def update(self, dets: Detections) -> np.ndarray:
        """Track ids ``(N,)`` for ``dets`` of the next frame."""
        return self._tracker.update(dets.xyxy, dets.confidence)
