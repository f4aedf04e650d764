"""A person's sign-off on one anonymized file: who, when, which bytes, after how many edits.

The record is ``OUTPUT.review.json`` beside the output. It names the SHA-256 of the file approved, so it approves
those bytes only: a re-render, or any other change to the file, leaves it unapproved until someone looks again.
``deid batch --require-review`` publishes an output only while :func:`approved` finds its record valid.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from deidcli.outputs import sha256

FORMAT = "deid-review/1"


def record_path(output: Path) -> Path:
    return Path(output).with_name(Path(output).name + ".review.json")


def corrections_path(output: Path) -> Path:
    return Path(output).with_name(Path(output).name + ".corrections.json")


def approve(output: Path, edits: int, original: Path | None = None, user: str | None = None) -> dict:
    """Record that ``user`` (the OS user by default) approved ``output`` as it is now, after ``edits`` edits."""
    record = {"format": FORMAT, "file": Path(output).name, "sha256": sha256(output),
              "approved_by": user or _user(), "approved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "edits": int(edits), "original": None if original is None else Path(original).name}
    path = record_path(output)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return record


def approved(output: Path) -> dict | None:
    """The approval record of ``output`` when there is one and it is of these very bytes; else None."""
    path = record_path(output)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not Path(output).is_file():
        return None
    return record if record.get("sha256") == sha256(output) else None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's uid): the number is still who it was
        return f"uid {os.getuid()}"
