"""Track ids from Ultralytics' ByteTrack, a maintained tracker, behind a two-line interface.

Only the ids come from the tracker. Which boxes get anonymized is decided elsewhere: every raw detection is
anonymized whether or not the tracker has confirmed it (Ultralytics' own blurrer skips unconfirmed tracks).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from deidcli.detection.yolo import keep_cv2_threads
from deidcli.detections import Detections
from deidcli.errors import ModelUnavailableError


class _Boxes:
    """The slice of ``ultralytics.engine.results.Boxes`` that BYTETracker reads."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy, self.conf, self.cls = xyxy, conf, cls
        wh = xyxy[:, 2:] - xyxy[:, :2]
        self.xywh = np.concatenate([xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> "_Boxes":
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


class ByteTracker:
    """Assigns a track id to each detection of each frame (``-1`` while the tracker has no track for it)."""

    def __init__(self, frame_rate: float = 30.0, low_threshold: float = 0.1, high_threshold: float = 0.25) -> None:
        with keep_cv2_threads():
            try:
                from ultralytics.trackers.byte_tracker import BYTETracker
            except ImportError as exc:
                raise ModelUnavailableError(f"tracking needs ultralytics and lap ({exc})") from None
        args = SimpleNamespace(
            track_high_thresh=high_threshold,
            track_low_thresh=low_threshold,
            new_track_thresh=high_threshold,
            track_buffer=max(int(round(frame_rate)), 1),  # keep lost tracks for about a second
            match_thresh=0.8,
            fuse_score=True,
        )
        self._tracker = BYTETracker(args)

    def update(self, dets: Detections) -> np.ndarray:
        """Track ids ``(N,)`` for ``dets`` of the next frame."""
        ids = np.full(len(dets), -1, dtype=np.int64)
        out = self._tracker.update(_Boxes(dets.xyxy.astype(np.float32), dets.confidence, dets.class_id.astype(np.float32)))
        for row in np.asarray(out).reshape(-1, 8):
            idx = int(row[7])
            if 0 <= idx < len(ids):
                ids[idx] = int(row[4])
        return ids
