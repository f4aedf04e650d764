"""The JSON report a script reads after a run."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from deidcli import __version__
from deidcli.config import DeidConfig
from deidcli.methods import METHODS
from deidcli.pipeline import FileResult
from deidcli.targets import parse_targets, per_target


def method_summary(cfg: DeidConfig) -> dict:
    """Each target's method, resolved strength and what the strength means."""
    targets = parse_targets(cfg.targets)
    methods = per_target(cfg.method, targets, str, "method")
    strengths = per_target(cfg.strength, targets, float, "strength")
    out = {}
    for t in targets:
        m = METHODS[methods[t] or DeidConfig.method]
        out[t] = {
            "name": m.name,
            "strength": strengths[t] if strengths[t] is not None else m.default_strength,
            "strength_meaning": m.strength_meaning,
            "natural_face": m.natural,
        }
        if m.policy:
            out[t]["policy"] = m.policy
        if m.needs == "generative":
            from deidcli.generative.model import default_model_path

            out[t]["model"] = cfg.model or str(default_model_path(m.name))
        if m.needs == "donors":
            out[t]["donors"] = cfg.donors or "synthetic (gan-face-generate DCGAN, DigiFace-1M)"
    return out


def build_report(cfg: DeidConfig, results: list[FileResult], seconds: float) -> dict:
    ok = [r for r in results if r.status == "ok"]
    frames = sum(r.frames for r in ok)
    return {
        "tool": "deid",
        "version": __version__,
        "python": platform.python_version(),
        "targets": list(parse_targets(cfg.targets)),
        "methods": method_summary(cfg),
        "mask": {"shape": cfg.mask_shape, "scale": cfg.mask_scale, "seed": cfg.seed},
        "detector": {"name": cfg.detector, "threshold": cfg.threshold, "scale": cfg.scale, "max_side": cfg.max_side},
        "encoder": {"codec": cfg.codec, "crf": "auto" if cfg.crf is None else cfg.crf, "preset": cfg.preset,
                    "strip_metadata": cfg.strip_metadata},
        "config": cfg.as_dict(),
        "summary": {
            "files": len(results),
            "succeeded": len(ok),
            "failed": len(results) - len(ok),
            "frames": frames,
            "seconds": round(seconds, 3),
            "fps": round(frames / seconds, 3) if seconds > 0 else 0.0,
        },
        "files": [r.as_dict() for r in results],
    }


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
