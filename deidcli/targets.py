"""What to anonymize: faces, whole bodies, licence plates, vehicles; and per-target settings such as ``face=frost,plate=solid``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from deidcli.errors import ConfigError

# class ids 0-4 in every Detections record; a vehicle is a whole car, truck, bus or motorcycle (its make and model
# identify the owner as well as its plate); an area is a place the operator named (--areas, --geofence), placed in
# each frame rather than detected (deidcli/areas/)
TARGETS = ("face", "body", "plate", "vehicle", "area")
DETECTED = TARGETS[:4]
CLASS_ID = {name: i for i, name in enumerate(TARGETS)}

V = TypeVar("V")


def parse_targets(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(t.strip() for t in items if t.strip()))
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise ConfigError(f"unknown target {', '.join(bad) or '(none)'}; choose from {', '.join(TARGETS)}")
    return names


def per_target(value, targets: tuple[str, ...], convert: Callable[[str], V], what: str) -> dict[str, V | None]:
    """``"x"`` applies to every target; ``"face=x,plate=y"`` sets targets one by one (the others get ``None``)."""
    out: dict[str, V | None] = {t: None for t in targets}
    if value is None:
        return out
    text = str(value)
    if "=" not in text:
        return {t: convert(text) for t in targets}
    for part in text.split(","):
        name, _, v = part.partition("=")
        name = name.strip()
        if name not in TARGETS:
            raise ConfigError(f"{what}: unknown target {name!r} in {text!r}; choose from {', '.join(TARGETS)}")
        if name in out:
            out[name] = convert(v.strip())
    return out
