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


def test_every_option_that_sets_a_key_reaches_the_config():
    """The commands pass their options to the configuration through one table (cli._config_overrides): an option
    left out of it would be parsed and then silently ignored."""
    import inspect
    from dataclasses import fields

    from deidcli import cli

    keys = {f.name for f in fields(DeidConfig)}
    assert {cli._CONFIG_KEY.get(n, n) for n in cli._CONFIG_OPTIONS} <= keys
    for command in (cli.run, cli.batch, cli.detect):
        params = set(inspect.signature(command).parameters)
        assert {p for p in params if p in keys or p in cli._CONFIG_KEY} <= set(cli._CONFIG_OPTIONS), command.__name__
    overrides = cli._config_overrides({"lookahead": 0.7, "color": "white", "audit": False, "donors": Path("d"),
                                       "output": Path("o.mp4"), "hfov": 70.0}, cli._CONFIG_OPTIONS)
    assert overrides == {"lookahead_s": 0.7, "color": (1.0, 1.0, 1.0), "audit": None, "donors": "d", "hfov": 70.0}
    assert cli._config_overrides({"areas": Path("a.json"), "overwrite": True}, cli._PLACE_OPTIONS) == {
        "areas": "a.json"}


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
