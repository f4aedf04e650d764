"""Without the optional `generative` extra (gan-face-generate), every generative entry point is one line naming the
extra (deid exits 9 on it), not an ImportError's traceback."""

from __future__ import annotations

import sys

import pytest

from deidcli.errors import ModelUnavailableError


@pytest.fixture
def no_extra(monkeypatch):
    for name in ("gan_face_generate", "gan_face_generate.models"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if the wheel were not installed


@pytest.mark.parametrize("name", ["replace", "gan", "autoencoder", "autoencoder-ap"])
def test_generative_methods_name_the_extra(no_extra, name):
    from deidcli.methods import get_method

    with pytest.raises(ModelUnavailableError, match=r"deidcli\[generative\]"):
        get_method(name)


def test_training_names_the_extra(no_extra):
    from deidcli.generative.training import train

    with pytest.raises(ModelUnavailableError, match=r"deidcli\[generative\]"):
        train("autoencoder", steps=1)


def test_evaluate_all_skips_them_with_the_reason(no_extra):
    from deidcli.methods.registry import unavailable

    assert "deidcli[generative]" in unavailable("replace") and unavailable("frost") is None
