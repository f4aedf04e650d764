"""Two halves of a folder of known people, by person: defaults are tuned on one and confirmed on the other.

The split is by identity, never by photo, so no person of the held-out half was seen while tuning. It is a pure
function of the identity names (sorted, alternately tune and confirm), so it is the same on every machine and for
every method, and adding photos of a known person never moves that person to the other half.
"""

from __future__ import annotations

from collections.abc import Iterable

SPLITS = ("tune", "confirm", "all")


def split_identities(identities: Iterable[str]) -> dict[str, str]:
    """``{identity: "tune" | "confirm"}``: the sorted distinct identities, alternately (the first is tune)."""
    return {name: SPLITS[i % 2] for i, name in enumerate(sorted(set(identities)))}


def in_split(identities: Iterable[str], split: str) -> list[bool]:
    """Per photo (its identity, in order), is it in ``split`` (``tune``, ``confirm`` or ``all``)?"""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose {', '.join(SPLITS)}")
    names = list(identities)
    half = split_identities(names)
    return [split == "all" or half[n] == split for n in names]
