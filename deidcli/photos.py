"""Folders of face photos: load them, find the face in each, cut it out (for `deid fit`, `evaluate`, `--consented`)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

from deidcli.image_io import open_image

from deidcli.detection import FaceDetector
from deidcli.errors import InputNotFoundError, NoMediaError
from deidcli.media import IMAGE_EXTS
from deidcli.methods.eigenfaces import FaceBasis, luminance, resize


@dataclass
class Photo:
    path: Path
    identity: str
    image: np.ndarray  # H x W x 3 uint8 RGB
    box: np.ndarray | None  # xyxy of the largest face, None when the detector found none


def load_rgb(path: Path, max_side: int = 1024) -> np.ndarray:
    """An image file as ``H x W x 3`` uint8 RGB, upright (EXIF orientation applied), longest side at most
    ``max_side`` (photos come at up to 4000 px; recognizers work on 150-160 px chips)."""
    with open_image(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.asarray(im).copy()


def largest(boxes: np.ndarray) -> np.ndarray | None:
    """The box ``(4,)`` of largest area among ``(N, 4)``, or None."""
    if len(boxes) == 0:
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(boxes[int(np.argmax(areas))], dtype=np.float32)


def photo_files(folder: Path) -> list[tuple[str, Path]]:
    """``(identity, path)`` for each photo: from ``identities.csv`` (columns identity_id or identity, and file)
    when the folder has one, otherwise every image file, named by its sub-folder (or by itself at the top)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"{folder}: no such folder")
    table = folder / "identities.csv"
    if table.is_file():
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh))
        out = [(r.get("identity_id") or r.get("identity") or "", folder / r["file"]) for r in rows]
    else:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        out = [(p.parent.name if p.parent != folder else p.stem, p) for p in files]
    if not out:
        raise NoMediaError(f"{folder}: no photos (jpg, png) in it")
    return out


def load_photos(folder: Path, detector: FaceDetector, max_side: int = 1024) -> list[Photo]:
    """Every photo of ``folder`` with the box of its largest face found by ``detector``."""
    photos = []
    for identity, path in photo_files(folder):
        img = load_rgb(path, max_side)
        photos.append(Photo(path, identity, img, largest(detector.detect(img, 1.0).xyxy)))
    return photos


def cut_face(image: np.ndarray, box: np.ndarray, framing: float, size: int) -> torch.Tensor:
    """The square of ``framing`` box heights around ``box``, resampled to ``(1, 3, size, size)`` in ``[0, 1]``;
    parts outside the image are filled with the nearest edge pixels."""
    x1, y1, x2, y2 = box
    side = framing * (y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = image.shape[:2]
    xs = np.clip(np.round(cx - side / 2 + np.arange(int(round(side))) + 0.5).astype(int), 0, w - 1)
    ys = np.clip(np.round(cy - side / 2 + np.arange(int(round(side))) + 0.5).astype(int), 0, h - 1)
    crop = torch.from_numpy(np.ascontiguousarray(image[ys][:, xs])).permute(2, 0, 1)[None].float() / 255
    return resize(crop, size, size)


def fit_basis(
    folder: Path, detector: FaceDetector, size: int = 32, channels: int = 3, framing: float = 1.06
) -> tuple[FaceBasis, int]:
    """An eigenface basis from the largest face of every photo in ``folder``; also how many photos had no face."""
    crops, missed = [], 0
    for photo in load_photos(folder, detector):
        if photo.box is None:
            missed += 1
            continue
        crop = cut_face(photo.image, photo.box, framing, size)
        crops.append(luminance(crop) if channels == 1 else crop)
    if len(crops) < 2:
        raise NoMediaError(f"{folder}: fewer than 2 photos with a face the detector can find")
    source = f"{folder.name}: {len(crops)} faces, {channels}x{size}x{size}"
    return FaceBasis.fit(torch.cat(crops), framing, source), missed
