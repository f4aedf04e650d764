"""``deid batch --require-review``: videos are written aside, and published only once a person approved them.

A video's output goes to ``DEST/.deid-held/REL`` with the regions it hid beside it; the reviewer opens it with
``deid review SOURCE DEST/.deid-held/REL``, corrects and re-renders it there if need be, and approves it. The next
``deid batch --require-review`` run moves every approved output (with its detections, corrections and approval
record) to ``DEST/REL`` and records who approved it in the manifest; the others stay held, and the run exits 17.
Photos are published as usual: the review page is for video.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from deidcli.batch.manifest import Manifest
from deidcli.batch.tree import Entry
from deidcli.detections_io import detections_path
from deidcli.outputs import sha256
from deidcli.review import approval

HELD = ".deid-held"


def held(entry: Entry, dst_root: Path) -> Entry:
    """``entry`` with its video output moved under the held folder (other kinds as they are)."""
    if entry.kind != "video" or entry.dst is None:
        return entry
    return replace(entry, dst=Path(dst_root) / HELD / entry.rel)


def publish_approved(manifest: Manifest, dst_root: Path) -> tuple[list[dict], list[dict]]:
    """Move each held output a person approved to its place in the tree; returns (published, still held) as
    ``{"input", "output"}`` (with ``approved_by`` for the published), each published one recorded in the
    manifest."""
    published, pending = [], []
    for rel, rec in sorted(manifest.latest.items()):
        if rec.get("status") != "ok" or rec.get("review") != "pending" or not rec.get("output"):
            continue
        where = Path(rec["output"])
        record = approval.approved(where)
        if record is None:
            pending.append({"input": rel, "output": str(where)})
            continue
        final = Path(dst_root) / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        for side in (detections_path, approval.corrections_path, approval.record_path):
            if side(where).is_file():
                os.replace(side(where), side(final))
        os.replace(where, final)
        manifest.append({**rec, "output": str(final), "output_sha256": sha256(final),
                         "output_bytes": final.stat().st_size, "review": "approved",
                         "approved_by": record["approved_by"], "approved_at": record["approved_at"],
                         "review_edits": record["edits"]})
        published.append({"input": rel, "output": str(final), "approved_by": record["approved_by"]})
    return published, pending
