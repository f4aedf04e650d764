"""Cover pictures (attached pictures of MP4, MOV and Matroska files): anonymized like photos, never copied.

A cover is often a frame of the clip or a portrait of its maker. It is decoded, anonymized on its own (no tracking),
and written back in its own format (JPEG or PNG) beside the output for the encoder to attach.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from deidcli.image_io import open_image
from deidcli.video.probe import StreamInfo, ffmpeg_path

FORMATS = {"mjpeg": ("JPEG", ".jpg"), "png": ("PNG", ".png")}


def read_cover(source: Path, stream: StreamInfo) -> np.ndarray | None:
    """The picture of cover stream ``stream`` as ``H x W x 3`` uint8 RGB, or None when it cannot be decoded."""
    try:
        with av.open(ffmpeg_path(source), metadata_errors="ignore") as c:
            s = next(x for x in c.streams if x.index == stream.index)
            data = next((bytes(p) for p in c.demux(s) if p.size), None)
    except (av.error.FFmpegError, StopIteration):
        return None
    if data is None:
        return None
    try:
        with open_image(data) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError):
        return None


def cover_suffix(stream: StreamInfo) -> str:
    return FORMATS.get(stream.codec or "", FORMATS["png"])[1]


def write_cover(image: np.ndarray, stream: StreamInfo, path: Path) -> None:
    """``image`` in the cover's own format (JPEG at quality 95, or PNG for anything else)."""
    fmt = FORMATS.get(stream.codec or "", FORMATS["png"])[0]
    kwargs = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(image).save(path, format=fmt, **kwargs)
