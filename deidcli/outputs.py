"""Where outputs go, and how they appear: whole or not at all."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from deidcli.errors import OutputExistsError, OutputNotWritableError

SUFFIX = "_anonymized"
TMP_MARK = ".deid-tmp-"


def default_output(src: Path) -> Path:
    """``clip.mp4`` -> ``clip_anonymized.mp4`` beside the input (``.mpg`` -> ``.mkv``: a container deid does not
    write is written as one that holds the same streams)."""
    from deidcli.video.containers import output_suffix

    return src.with_name(f"{src.stem}{SUFFIX}{output_suffix(src)}")


def mirrored_name(src: Path) -> str:
    """The name of ``src``'s output inside an output folder: its own, with the container rule of
    :func:`default_output`."""
    from deidcli.video.containers import output_suffix

    return f"{src.stem}{output_suffix(src)}"


def temporary_beside(dst: Path, tag: str, suffix: str) -> Path:
    """A hidden working file beside ``dst`` (an extra stream, a cover picture), named so a later run removes it
    when this process has died: ``.NAME.deid-tmp-PID.TAG.SUFFIX``."""
    return dst.with_name(f".{dst.stem}{TMP_MARK}{os.getpid()}.{tag}{suffix}")


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


def remove_stale_temporaries(folder: Path, recursive: bool = True) -> list[Path]:
    """Delete the temporary outputs of runs that were killed (their process is gone); returns what was removed.

    A temporary names its process (``.NAME.deid-tmp-PID...``), so one whose process still runs is never touched.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in (folder.rglob if recursive else folder.glob)(f"*{TMP_MARK}*"):
        pid = path.name.split(TMP_MARK, 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The file's SHA-256, hex, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
