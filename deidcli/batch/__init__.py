"""`deid batch`: whole archives, resumable, with a manifest; on this machine's cores or on a Ray cluster."""

from deidcli.batch.runner import BatchSummary, check_batch, run_batch
from deidcli.batch.worker import BatchWorker

__all__ = ["BatchSummary", "BatchWorker", "check_batch", "run_batch"]
