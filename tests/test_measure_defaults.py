"""scripts/measure_defaults.py: which strength becomes the default, the note when none does, and a partial run that
keeps the other methods' entries."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from deidcli.evaluation.evaluate import Evaluation, Setting

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_defaults.py"


@pytest.fixture(scope="module")
def md():
    spec = importlib.util.spec_from_file_location("measure_defaults", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _half(plan: dict[float, bool]) -> Evaluation:
    """A half whose blur settings protect (rank-1 at chance, 30 probes) or do not (rank-1 far above it)."""
    def fig(ok: bool) -> dict:
        return {"rank1": 0.1 if ok else 0.6, "chance_rank1": 0.1, "rank1_open": 0.0, "probes": 30}

    settings = [Setting("blur", x, 20.0, 0.5, 30.0, 0.9, 0.0, {"dlib": fig(ok), "facenet": fig(ok)})
                for x, ok in plan.items()]
    return Evaluation("people", 30, 6, [], 0.01, {}, settings)


def test_default_is_the_weakest_that_passes_both_halves_as_every_stronger_does(md):
    tune = _half({4: True, 8: False, 16: True, 24: True})
    confirm = _half({4: True, 8: True, 16: True, 24: True})
    entry = md.choose([4, 8, 16, 24], tune, confirm, "blur")
    assert entry["default"] == 16 and entry["weakest_on_tune"] == 4  # 4 passed by luck: 8, stronger, did not
    assert entry["tune"]["strength"] == 16 and [r[0] for r in entry["sweep"]["tune"]] == [4, 8, 16, 24]


def test_no_default_says_which_strength_protected_and_which_stronger_one_did_not(md):
    entry = md.choose([0, 0.5], _half({0: True, 0.5: False}), _half({0: True, 0.5: True}), "blur")
    assert entry["default"] is None and entry["note"] == "0 protected both halves, the stronger 0.5 did not"
    entry = md.choose([4, 8], _half({4: False, 8: False}), _half({4: True, 8: True}), "blur")
    assert entry["note"] == "no strength of the sweep protects the tune half"


def test_a_partial_run_keeps_entries_measured_by_the_same_rule_only(md, tmp_path):
    record = {"rule": "r", "region": "g", "halves": {"tune": {"people": ["a"]}, "confirm": {"people": ["b"]}},
              "methods": {"blur": {"default": 8}}}
    old = {**record, "command": "full run", "minutes": 20, "methods": {"blur": {"default": 4}, "pca": {"default": 0},
                                                                      "gone": {"default": 1}}}
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps(old))
    kept, how = md._earlier(path, record)
    assert kept == {"pca": {"default": 0}} and how == {"command": "full run", "minutes": 20}  # not renamed methods
    path.write_text(json.dumps({**old, "rule": "another rule"}))
    assert md._earlier(path, record) == ({}, {})
    assert md._earlier(tmp_path / "missing.json", record) == ({}, {})
