"""Frames of a video on demand, by index, for a page that steps through it: never the whole video in memory.

The packets are read once (no decoding) to learn each frame's timestamp in presentation order and where the
keyframes are. A frame is then decoded from the nearest keyframe before it, or straight on from the frame the
decoder stands at, which is what a step forward needs; the frames served are kept, as JPEG, in a small cache, so
stepping back over them costs nothing, and the last frames decoded are kept as they came from the decoder (up to
256 MB: 80 frames of 1080p 4:2:0), so a step back from a frame never served costs no decode either.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from pathlib import Path

import av
import cv2
import numpy as np

from deidcli.errors import InvalidMediaError
from deidcli.video.reader import to_rgb

CACHE_FRAMES = 192  # JPEGs kept per video (a 1080p frame is about 300 KB)
RECENT_BYTES = 256 << 20  # decoded frames kept as the decoder gave them: a step back needs no new decode
JPEG_QUALITY = 90


class FrameSource:
    """The frames of the first video stream of ``path``, by index, as RGB arrays or JPEG bytes."""

    def __init__(self, path: Path, max_side: int = 1920) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._max_side = max_side
        self._open()

    def _open(self) -> None:
        self._stamp = _stamp(self.path)
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise InvalidMediaError(f"{self.path}: cannot open ({exc})") from None
        if not self._container.streams.video:
            raise InvalidMediaError(f"{self.path}: no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        pts, keys = [], []
        for packet in self._container.demux(self._stream):
            if packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        self._pts = sorted(pts)
        self._keys = sorted(keys) or self._pts[:1]
        self._index = {p: i for i, p in enumerate(self._pts)}
        self.width, self.height = self._stream.codec_context.width, self._stream.codec_context.height
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None
        scale = min(1.0, self._max_side / max(self.width, self.height))
        self.shown = (round(self.width * scale), round(self.height * scale))  # the size pages are served at
        self._frames = None  # the decoder's iterator and the index of the frame it gives next
        self._next = -1
        self._recent: OrderedDict[int, av.VideoFrame] = OrderedDict()
        plane = self.width * self.height * max(1.5, len(self._stream.codec_context.format.components or ()) / 2)
        self._keep_recent = max(8, int(RECENT_BYTES // plane))

    def __len__(self) -> int:
        return len(self._pts)

    def close(self) -> None:
        self._container.close()

    def _reopen_if_replaced(self) -> None:
        """A re-render replaces the file under its name: the open container would go on showing the old one."""
        if _stamp(self.path) != self._stamp:
            self._container.close()
            self._open()

    def image(self, n: int) -> np.ndarray:
        """Frame ``n`` as ``H x W x 3`` RGB uint8, at the video's own size."""
        with self._lock:
            self._reopen_if_replaced()
            return self._decode_to(n)

    def jpeg(self, n: int) -> bytes:
        """Frame ``n`` as JPEG at :attr:`shown` size."""
        with self._lock:
            self._reopen_if_replaced()
            if n in self._cache:
                self._cache.move_to_end(n)
                return self._cache[n]
            return self._encode(n, self._decode_to(n))

    def _encode(self, n: int, rgb: np.ndarray) -> bytes:
        if rgb.shape[1] != self.shown[0]:
            rgb = cv2.resize(rgb, self.shown, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        data = buf.tobytes()
        self._cache[n] = data
        while len(self._cache) > CACHE_FRAMES:
            self._cache.popitem(last=False)
        return data

    def _decode_to(self, n: int) -> np.ndarray:
        if not 0 <= n < len(self._pts):
            raise IndexError(f"frame {n} is not in the video (0..{len(self._pts) - 1})")
        if n in self._recent:
            return to_rgb(self._recent[n])
        target = self._pts[n]
        if self._frames is None or not self._next <= n or n - self._next > 2 * self._gop():
            key = self._keys[max(0, bisect.bisect_right(self._keys, target) - 1)]
            self._container.seek(key, stream=self._stream, backward=True, any_frame=False)
            self._frames = self._container.decode(self._stream)
            self._next = -1
        for frame in self._frames:
            i = self._index.get(frame.pts)
            if i is None:
                continue
            self._next = i + 1
            self._recent[i] = frame
            while len(self._recent) > self._keep_recent:
                self._recent.popitem(last=False)
            if i == n:
                return to_rgb(frame)
            if i > n:
                break
        self._frames = None
        raise InvalidMediaError(f"{self.path}: frame {n} cannot be decoded")

    def _gop(self) -> int:
        return max(1, len(self._pts) // max(1, len(self._keys)))


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns
