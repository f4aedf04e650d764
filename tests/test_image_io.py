"""Images are known by their first bytes: photo folders may hold WebP under a .jpg name, and nothing that is not
an image reaches PIL (whose open Ultralytics replaces with one that pip-installs a plugin)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from deidcli.image_io import file_format, open_image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_photo_format_opens_whatever_its_name(tmp_path, fmt):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(path, format=fmt)
    with open_image(path) as im:
        assert im.size == (8, 8)
    assert file_format(path) == ({"JPEG": ("JPEG", ".jpg"), "PNG": ("PNG", ".png")}.get(fmt))


def test_anything_else_is_refused_before_pil_sees_it(tmp_path, monkeypatch):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("PIL.Image.open must not be called"))
    with pytest.raises(UnidentifiedImageError):
        open_image(path)
    with pytest.raises(UnidentifiedImageError):
        open_image(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a RIFF that is no WebP
    assert file_format(path) is None
