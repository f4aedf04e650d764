"""The work on one file of a batch, the same whichever engine runs it (in process, a process pool, Ray)."""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import replace
from datetime import datetime, timezone

from deidcli.anonymizer import FrameAnonymizer
from deidcli.areas.places import Places
from deidcli.outputs import sha256
from deidcli.positions import strip_positions
from deidcli.batch.tree import Entry
from deidcli.config import DeidConfig
from deidcli.errors import DeidError, ExitCode
from deidcli.media import Job
from deidcli.outputs import atomic_output
from deidcli.pipeline import process_image, process_video
from deidcli.report import method_summary


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def limit_threads(threads: int) -> None:
    """Share the cores between parallel workers instead of each taking all of them."""
    import cv2
    import torch

    torch.set_num_threads(max(1, threads))
    cv2.setNumThreads(max(1, threads))


class BatchWorker:
    """Holds one anonymizer (models loaded once) and processes files with it."""

    def __init__(self, cfg: DeidConfig, threads: int | None = None) -> None:
        if threads:
            limit_threads(threads)
        # A batch may replace an output left by a run killed between its rename and its manifest line; a video
        # held for review keeps the regions it hid beside it, for `deid review`.
        self.cfg = replace(cfg, overwrite=True, keep_detections=cfg.keep_detections or cfg.require_review)
        self.anonymizer = FrameAnonymizer.from_config(self.cfg)
        self.places = Places.from_config(self.cfg)  # --areas, --geofence: the same places in every file
        if not threads:
            import torch

            torch.set_num_threads(self.anonymizer.torch_threads())

    def process(self, entry: Entry, versions: dict) -> dict:
        """Anonymize (or copy) one entry; returns its manifest record. Never raises for a bad file."""
        rec = {"input": entry.rel, "input_path": str(entry.src), "output": str(entry.dst), "kind": entry.kind,
               "started": _now(), "versions": versions, "host": socket.gethostname(), "pid": os.getpid()}
        t0 = time.perf_counter()
        try:
            rec["input_sha256"] = sha256(entry.src)
            rec["input_bytes"] = entry.src.stat().st_size
            if entry.kind == "other":
                with atomic_output(entry.dst, overwrite=True) as tmp:
                    shutil.copyfile(entry.src, tmp)
                rec["status"] = "copied"
            elif entry.kind == "sidecar":
                rec.update(self._sidecar(entry))
            else:
                rec.update(self._anonymize(entry))
                rec["status"] = "ok"
                if self.cfg.require_review and entry.kind == "video":
                    rec["review"] = "pending"
            if rec["output"] is not None:
                rec["output_sha256"] = sha256(entry.dst)
                rec["output_bytes"] = entry.dst.stat().st_size
            rec["error"], rec["exit_code"] = None, 0
        except DeidError as exc:
            rec.update(status="failed", error=exc.message, exit_code=int(exc.exit_code))
        except Exception as exc:  # one bad file must not stop the batch; recorded with its reason
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}", exit_code=int(ExitCode.INTERNAL))
        rec["finished"] = _now()
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        return rec

    def _sidecar(self, entry: Entry) -> dict:
        """A clip's telemetry file beside its output: as it is, or without positions under --strip-metadata."""
        if not self.cfg.strip_metadata:
            with atomic_output(entry.dst, overwrite=True) as tmp:
                shutil.copyfile(entry.src, tmp)
            return {"status": "copied"}
        text = entry.src.read_bytes().decode("utf-8", errors="surrogateescape")
        stripped = strip_positions(text)
        if not stripped.safe:
            return {"status": "omitted", "output": None, "reason": "something like coordinates is left after "
                    "removing the position fields"}
        with atomic_output(entry.dst, overwrite=True) as tmp:
            tmp.write_bytes(stripped.text.encode("utf-8", errors="surrogateescape"))
        return {"status": "copied", "positions_removed": stripped.removed}

    def _anonymize(self, entry: Entry) -> dict:
        job = Job(entry.src, entry.dst, entry.kind)
        entry.dst.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "video":
            result = process_video(job, self.anonymizer, self.cfg, places=self.places)
        else:
            result = process_image(job, self.anonymizer, self.cfg, places=self.places)
        d = result.as_dict()
        out = {
            "duration_s": d["duration_s"], "frames": d["frames"], "width": d["width"], "height": d["height"],
            "detections": d["detections_by_target"], "tracks": len(d["tracks"]),
            "filled_regions": d["filled_regions"], "consented_visible": d["consented_visible"],
            "methods": method_summary(self.cfg), "fps": d["fps"],
        }
        if (self.cfg.audit or self.cfg.fail_on_leak is not None) and entry.kind == "video":
            out["audit_leak_rate"], out["audit_faces"] = self._audit(entry)
        return out

    def _audit(self, entry: Entry) -> tuple[float, int]:
        from deidcli.audit import audit_output

        result = audit_output(entry.src, entry.dst, self.cfg.audit_every)
        return round(result.leak_rate, 6), len(result.faces)
