"""Finding the media among the inputs: video files, still images, and folders of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deidcli.errors import ConfigError, InputNotFoundError, InvalidMediaError, NoMediaError
from deidcli.outputs import SUFFIX, TMP_MARK, default_output, mirrored_name

IMAGE_EXTS = {".jpg", ".jpeg", ".png"}
# Drone and camera files: DJI's .LRF previews and Insta360's .insv are MP4, GoPro MAX's .360 holds two lenses.
VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg", ".wmv",
              ".mxf", ".lrf", ".insv", ".360", ".3gp", ".flv", ".vob", ".asf", ".qt"}


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    kind: str  # "video" or "image"


def kind_of(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def _is_own_output(path: Path) -> bool:
    return path.stem.endswith(SUFFIX) or TMP_MARK in path.name


def plan_jobs(inputs: list[Path], output: Path | None) -> list[Job]:
    """One job per media file, with its output path.

    ``output`` is a file for a single file input, otherwise a folder (created when missing). Without it, each
    output lands beside its input (``name_anonymized.ext``) and a folder maps to ``folder_anonymized/``.
    """
    expanded: list[tuple[Path, Path | None]] = []  # (file, folder it came from)
    for p in inputs:
        if not p.exists():
            raise InputNotFoundError(f"{p}: no such file or folder")
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and kind_of(f) and not _is_own_output(f))
            if not files:
                raise NoMediaError(f"{p}: folder holds no video or image files")
            expanded += [(f, p) for f in files]
        else:
            if kind_of(p) is None:
                raise InvalidMediaError(f"{p}: not a supported video or image type ({p.suffix or 'no extension'})")
            expanded.append((p, None))

    single = len(expanded) == 1 and expanded[0][1] is None
    if output is not None and not single and kind_of(output) and not output.is_dir():
        raise ConfigError(f"-o {output} names one file, but there are {len(expanded)} inputs: give a folder")
    jobs = []
    for f, folder in expanded:
        if output is not None:
            if single and output.suffix and not output.is_dir():
                dst = output
            else:
                dst = output / default_output(f).name if folder is None else output / mirrored_name(f)
        elif folder is not None:
            dst = folder.with_name(folder.name + SUFFIX) / mirrored_name(f)
        else:
            dst = default_output(f)
        jobs.append(Job(f, dst, kind_of(f)))
    _check_distinct(jobs)
    return jobs


def _check_distinct(jobs: list[Job]) -> None:
    """Two inputs may not write one output, and no output may be another input: refused before any work."""
    sources = {j.src.resolve(): j.src for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        key = j.dst.resolve()
        if key in seen:
            raise ConfigError(f"{seen[key]} and {j.src} would both be written to {j.dst}; give them separate -o "
                              f"folders")
        if key in sources and sources[key] != j.src:
            raise ConfigError(f"the output of {j.src} would overwrite the input {sources[key]}")
        seen[key] = j.src
