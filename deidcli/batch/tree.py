"""Walk a source tree: which files are media (by content, not only by name), and where each output goes.

Outputs mirror the source tree under the destination and never leave it: a symlink that points outside the source,
or a name that would resolve outside the destination, is refused and recorded, never followed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av

from deidcli.positions import is_sidecar
from deidcli.image_io import file_format
from deidcli.media import IMAGE_EXTS, VIDEO_EXTS
from deidcli.outputs import TMP_MARK, mirrored_name



@dataclass(frozen=True)
class Entry:
    """One file of the source tree and what to do with it."""

    src: Path
    rel: str  # path relative to the source root, with "/" separators: the manifest's key
    dst: Path | None  # None when refused
    kind: str  # "video", "image", "sidecar" (a clip's telemetry .SRT), "other" (not media), "unsafe" (refused)
    reason: str = ""


def sniff(path: Path) -> str | None:
    """``"image"``, ``"video"`` or None, from the file's content. Files named like media count as media even when
    unreadable, so a corrupt clip is attempted and fails with its reason instead of being passed over."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if file_format(path) is not None:
        return "image"
    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if c.streams.video and c.format.name not in ("image2", "png_pipe", "jpeg_pipe", "tty"):
                return "video"
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        pass
    return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def scan(src: Path, dst: Path) -> list[Entry]:
    """Every file under ``src`` (sorted, recursive), classified, with its mirrored output path under ``dst``."""
    src_root, dst_root = src.resolve(), dst.resolve()
    entries = []
    for dirpath, dirnames, filenames in os.walk(src_root, followlinks=False):
        here = Path(dirpath)
        # never descend into the destination (it may sit inside the source) or into hidden folders
        dirnames[:] = sorted(d for d in dirnames if not _inside((here / d).resolve(), dst_root) and not d.startswith("."))
        video_stems = {Path(n).stem.lower() for n in filenames if Path(n).suffix.lower() in VIDEO_EXTS}
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(src_root).as_posix()
            if TMP_MARK in name or name.startswith("."):
                continue  # our own temporary files, and hidden files
            if path.is_symlink():
                target = path.resolve()
                if not _inside(target, src_root):
                    entries.append(Entry(path, rel, None, "unsafe", "symlink points outside the source folder"))
                    continue
                if not target.is_file():
                    entries.append(Entry(path, rel, None, "unsafe", "symlink to something that is not a file"))
                    continue
            out = (dst_root / rel).with_name(mirrored_name(path))
            if not _inside(out.resolve(), dst_root):
                entries.append(Entry(path, rel, None, "unsafe", "output would land outside the destination"))
                continue
            if is_sidecar(path, video_stems):
                entries.append(Entry(path, rel, out, "sidecar"))
                continue
            kind = sniff(path) or "other"
            if kind == "video" and path.suffix.lower() not in VIDEO_EXTS:
                out = out.with_name(out.name + ".mp4")  # ffmpeg picks the container from the extension
            if kind == "image" and path.suffix.lower() not in IMAGE_EXTS:
                out = out.with_name(out.name + file_format(path)[1])
            entries.append(Entry(path, rel, out, kind))
    return entries
