"""Where outputs go, and how they appear: whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from deidcli.errors import OutputExistsError, OutputNotWritableError

SUFFIX = "_anonymized"
TMP_MARK = ".deid-tmp-"


def default_output(src: Path) -> Path:
    """``clip.mp4`` -> ``clip_anonymized.mp4`` beside the input."""
    return src.with_name(f"{src.stem}{SUFFIX}{src.suffix}")


@contextlib.contextmanager
def atomic_output(dst: Path, overwrite: bool = False, src: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` only when the block finishes without error.

    The temporary file keeps ``dst``'s extension (ffmpeg picks the container from it) and is hidden, so an
    interrupted run leaves no file under the output's name.
    """
    dst = Path(dst)
    if src is not None and dst.resolve() == Path(src).resolve():
        raise OutputExistsError(f"{dst}: output would overwrite the input; choose another -o")
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst}: output exists (use --overwrite to replace it)")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"{dst.parent}: cannot create output folder ({exc.strerror})") from None
    tmp = dst.with_name(f".{dst.stem}{TMP_MARK}{os.getpid()}{dst.suffix}")
    try:
        tmp.touch()  # proves the folder is writable before any work is done
    except OSError as exc:
        raise OutputNotWritableError(f"{dst.parent}: output folder is not writable ({exc.strerror})") from None
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
