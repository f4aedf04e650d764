"""The measured defaults (deidcli/methods/data/protective_defaults.json, `make defaults`): the registry agrees with
the file, every default protects the held-out half of the shared identities, and `deid run` warns below them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli, shared
from deidcli.methods import METHODS
from deidcli.methods.registry import PROTECTIVE_DEFAULTS, load_never_protective, load_protective_strengths


def _measured() -> dict[str, dict]:
    """Per method the file lists and the registry has (methods added since the measurement are not in it)."""
    return {m: e for m, e in json.loads(PROTECTIVE_DEFAULTS.read_text())["methods"].items() if m in METHODS}


def test_registry_defaults_are_the_measured_ones():
    from deidcli.evaluation.evaluate import at_chance

    measured = _measured()
    assert measured, f"{PROTECTIVE_DEFAULTS} lists no method of the registry"
    for name, entry in measured.items():
        if entry["default"] is None:  # nothing in its sweep protected both halves: no claim, a warning at any strength
            assert METHODS[name].protective_strength is None and METHODS[name].never_protective
            continue
        assert not METHODS[name].never_protective
        # the default is the measured strength or stronger (never weaker), and the warning line sits at the measured
        assert not METHODS[name].weaker_than_protective(METHODS[name].default_strength), name
        assert METHODS[name].protective_strength == entry["default"], name
        for half, rows in entry["sweep"].items():  # a stronger default was measured too, and protects there
            row = next((r for r in rows if r[0] == METHODS[name].default_strength), None)
            assert row is not None and row[1] is True, (name, half)
        for half in ("tune", "confirm"):
            figures = entry[half]
            assert figures["strength"] == entry["default"]
            for rec in ("dlib", "facenet"):
                fig = figures[rec]
                assert at_chance(fig) and fig["rank1_open"] < 0.05


@pytest.mark.slow
def test_every_default_protects_the_held_out_half():
    """deid evaluate on the confirm half (people never seen while tuning), one strength per method: its default."""
    from deidcli.detection import build_detector
    from deidcli.errors import ModelUnavailableError
    from deidcli.evaluation.evaluate import evaluate, protects
    from deidcli.recognition.recognizer import DlibRecognizer, FaceNetRecognizer

    folder = shared("identities")
    try:
        facenet = FaceNetRecognizer()
    except ModelUnavailableError as exc:
        pytest.skip(f"FaceNet not available: {exc}")
    from deidcli.methods.registry import train_untrained, unavailable

    # the generative methods too: their default models train on first use (a clean machine trains them here, so
    # this checks that a rebuild by today's recipe protects as the measured models did)
    defaults = {m: [METHODS[m].default_strength] for m, e in _measured().items()
                if e["default"] is not None and not unavailable(m)}
    if not defaults:
        pytest.skip(f"no method has a measured protective default in {PROTECTIVE_DEFAULTS.name}")
    train_untrained(list(defaults))  # with every core, as a user's first `deid run` trains them
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as deid evaluate does: far faster when the cores are shared
    try:
        result = evaluate(folder, build_detector("centerface", None, "cpu"), [DlibRecognizer(), facenet],
                          list(defaults), defaults, split="confirm")
    finally:
        torch.set_num_threads(threads)
    assert [s.method for s in result.settings] == list(defaults)
    failing = {s.method: {r: s.recognizers[r] for r in ("dlib", "facenet")} for s in result.settings if not protects(s)}
    assert not failing
    measured = _measured()
    for s in result.settings:
        if METHODS[s.method].natural:  # a new face: a detector still finds one, with the detail measured
            assert s.detected >= 0.9, (s.method, s.detected)
            assert s.detail >= 0.75 * measured[s.method]["confirm"]["detail"], (s.method, s.detail)


def test_measured_strengths_are_read_from_the_file(tmp_path):
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps({"methods": {"blur": {"default": 12}, "svd": {"default": None}, "gan": {}}}))
    assert load_protective_strengths(path) == {"blur": 12.0}
    assert load_never_protective(path) == {"svd"}
    assert load_protective_strengths(tmp_path / "missing.json") == {}
    path.write_text("{not json")
    assert load_protective_strengths(path) == {}


def test_weaker_than_protective_follows_the_knobs_direction():
    from dataclasses import replace

    blur = replace(METHODS["blur"], protective_strength=12.0)
    svd = replace(METHODS["svd"], protective_strength=0.5)
    assert blur.weaker_than_protective(8)
    assert not blur.weaker_than_protective(12) and not blur.weaker_than_protective(16)
    assert svd.weaker_than_protective(1) and not svd.weaker_than_protective(0.25)
    assert not METHODS["ifgvm"].weaker_than_protective(0.1)  # nothing measured: no claim


def _weaker(name: str) -> float:
    m = METHODS[name]
    return m.protective_strength / 2 if m.stronger_is == "higher" else m.protective_strength + 4


def _photo(folder) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 96, 3)) * 255).astype(np.uint8)).save(folder / "street.png")


@pytest.fixture
def measured_method(monkeypatch) -> str:
    """A method with a protective strength: the measured one where the file has one, else pixelate at 16 for the
    test (the warning's mechanism does not depend on what was measured)."""
    from dataclasses import replace

    strengths = load_protective_strengths()
    name = "pixelate" if "pixelate" in strengths or not strengths else next(iter(strengths))
    if METHODS[name].protective_strength is None:
        monkeypatch.setitem(METHODS, name, replace(METHODS[name], protective_strength=16.0))
    return name


def test_run_and_batch_warn_once_below_the_measured_strength(tmp_path, measured_method):
    _photo(tmp_path / "in")
    name, p = measured_method, METHODS[measured_method].protective_strength
    weak = ["--method", name, "--strength", f"{_weaker(name):g}", "-q"]
    r = run_cli("run", tmp_path / "in" / "street.png", "-o", tmp_path / "weak.png", *weak)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("deid: warning:")]
    assert len(warnings) == 1 and f"weaker than {p:g}" in warnings[0] and "protective_defaults.json" in warnings[0]
    r = run_cli("batch", tmp_path / "in", "-o", tmp_path / "batch", *weak)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("deid: warning:") == 1


def test_no_warning_at_or_above_the_measured_strength(tmp_path, measured_method):
    _photo(tmp_path / "in")
    name = measured_method
    for extra in ([], ["--strength", f"{METHODS[name].protective_strength:g}"]):
        r = run_cli("run", tmp_path / "in" / "street.png", "-o", tmp_path / "out.png", "--overwrite", "--method", name,
                    "-q", *extra)
        assert r.returncode == 0, r.stderr
        assert "warning" not in r.stderr
    # Bodies and plates were not measured: no claim about them.
    r = run_cli("run", tmp_path / "in" / "street.png", "-o", tmp_path / "body.png", "--overwrite", "--method",
                f"face={name},plate=solid", "--strength", f"plate={_weaker(name):g}", "-q")
    assert "warning" not in r.stderr


def test_a_method_that_never_protects_is_named_at_any_strength(tmp_path, monkeypatch):
    from dataclasses import replace

    _photo(tmp_path / "in")
    monkeypatch.setitem(METHODS, "noise", replace(METHODS["noise"], never_protective=True, protective_strength=None,
                                                  protective_note="1 protected both halves, the stronger 2 did not"))
    for extra in ([], ["--strength", "1"]):
        r = run_cli("run", tmp_path / "in" / "street.png", "-o", tmp_path / "noise.png", "--overwrite", "--method",
                    "noise", "-q", *extra)
        assert r.returncode == 0, r.stderr
        warnings = [line for line in r.stderr.splitlines() if line.startswith("deid: warning:")]
        assert len(warnings) == 1 and "no strength of noise" in warnings[0], r.stderr
        assert "the stronger 2 did not" in warnings[0]  # the measurement's reason, from the file's note
