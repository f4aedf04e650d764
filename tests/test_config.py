"""One configuration object: defaults, YAML presets in configs/, flags on top."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_deid
from deidcli.config import DeidConfig, load_config
from deidcli.errors import ConfigError, ExitCode


def test_default_yaml_lists_every_setting_at_its_default():
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    defaults = asdict(DeidConfig())
    assert set(data) == set(defaults)
    assert load_config(ROOT / "configs" / "default.yaml") == DeidConfig()


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_presets_load(preset: Path):
    load_config(preset).validate()


def test_flags_override_preset():
    cfg = load_config(ROOT / "configs" / "broadcast.yaml")
    assert cfg.method == "solid" and cfg.strip_metadata
    assert cfg.with_overrides(method="pixelate", strip_metadata=None).method == "pixelate"
    assert cfg.with_overrides(method="pixelate").strip_metadata, "None leaves the preset's value"


@pytest.mark.parametrize(
    "values",
    [{"mask_scale": 0.5}, {"crf": 99}, {"scale": "big"}, {"device": "tpu"}, {"tile": "12x12"}, {"threshold": 1.5},
     {"detect_every": 0}, {"detect_every": 9}],
)
def test_bad_values_are_refused(values):
    with pytest.raises(ConfigError):
        DeidConfig().with_overrides(**values)


def test_bad_preset_is_a_usage_error(tmp_path, sample):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [oops\n")
    r = run_deid("run", sample, "-o", tmp_path / "o.mp4", "--config", bad)
    assert r.returncode == int(ExitCode.USAGE) and "not valid YAML" in r.stderr
