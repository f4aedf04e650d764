"""Still images deid reads and writes (JPEG, PNG), recognised by their first bytes before any decoder sees them.

Knowing the format from the signature keeps every other file away from ``PIL.Image.open``, which Ultralytics
replaces on import with a version that, on a file it cannot identify, tries to install a HEIF plugin with pip: a
hidden install with internet, a traceback without.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# What deid anonymizes and writes back in the same format.
SIGNATURES = {b"\xff\xd8\xff": ("JPEG", ".jpg"), b"\x89PNG\r\n\x1a\n": ("PNG", ".png")}
# How deid writes a JPEG photo: 4:4:4 chroma, close to transparent.
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}

# What it also reads, in folders of face photos (a photo saved as WebP under a .jpg name is common).
READABLE = (b"RIFF", b"BM", b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a")


def image_format(data: bytes) -> tuple[str, str] | None:
    """(PIL format, extension) of an image from its first bytes, or None when it is neither JPEG nor PNG."""
    return next((fmt for magic, fmt in SIGNATURES.items() if data.startswith(magic)), None)


def _readable(head: bytes) -> bool:
    return image_format(head) is not None or (head.startswith(READABLE) and (not head.startswith(b"RIFF")
                                                                          or head[8:12] == b"WEBP"))


def file_format(path: Path) -> tuple[str, str] | None:
    try:
        with open(path, "rb") as fh:
            return image_format(fh.read(8))
    except OSError:
        return None


def open_image(source: Path | bytes) -> Image.Image:
    """An image file (or its bytes) opened: JPEG, PNG, WebP, BMP, TIFF or GIF; anything else raises
    ``PIL.UnidentifiedImageError`` before PIL sees it."""
    head = source[:12] if isinstance(source, bytes) else None
    if head is None:
        with open(source, "rb") as fh:
            head = fh.read(12)
    if not _readable(head):
        raise Image.UnidentifiedImageError("not a JPEG, PNG, WebP, BMP, TIFF or GIF image")
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def jpeg_round_trip(image: np.ndarray, quality: int = 95, subsampling: int = 0) -> np.ndarray:
    """``image`` (``H x W x 3`` uint8 RGB) as it reads back once saved as a JPEG with these options (PIL's)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
