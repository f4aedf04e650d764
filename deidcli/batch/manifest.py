"""The batch manifest: one JSON line per file and outcome, appended as each finishes, and a CSV copy of it.

Appends are flushed and synced one line at a time, so a run killed at any moment leaves every finished file
recorded and, at worst, one torn last line, which the next run ignores. The latest record of a file wins.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from deidcli.outputs import atomic_output

JSONL_NAME = "deid-manifest.jsonl"
CSV_NAME = "deid-manifest.csv"
DONE = ("ok", "copied")
OMITTED = "omitted"  # deliberately not written (a telemetry sidecar whose positions could not be removed safely)
CSV_FIELDS = [
    "input", "status", "kind", "output", "error", "exit_code", "input_sha256", "output_sha256", "input_bytes",
    "output_bytes", "duration_s", "frames", "detections", "methods", "audit_leak_rate", "started", "finished",
    "seconds", "deid_version", "reason", "review", "approved_by", "approved_at",
]


class Manifest:
    def __init__(self, folder: Path) -> None:
        self.path = folder / JSONL_NAME
        self.csv_path = folder / CSV_NAME
        self.latest: dict[str, dict] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the torn last line of a killed run
                    self.latest[rec["input"]] = rec

    def done(self, rel: str) -> bool:
        """Finished before: recorded as done, and its output is still there, whole (same size as recorded)."""
        rec = self.latest.get(rel)
        if rec and rec.get("status") == OMITTED:
            return True
        if not rec or rec.get("status") not in DONE or not rec.get("output"):
            return False
        out = Path(rec["output"])
        if rec.get("review") == "pending":  # held for review: a reviewer may have rendered it again there
            return out.is_file()
        return out.is_file() and out.stat().st_size == rec.get("output_bytes")

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.latest[record["input"]] = record

    def write_csv(self) -> None:
        with atomic_output(self.csv_path, overwrite=True) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
                w.writeheader()
                for rel in sorted(self.latest):
                    rec = dict(self.latest[rel])
                    rec["detections"] = json.dumps(rec.get("detections") or {}, sort_keys=True)
                    rec["methods"] = json.dumps(rec.get("methods") or {}, sort_keys=True)
                    rec["deid_version"] = (rec.get("versions") or {}).get("deid", "")
                    w.writerow(rec)
