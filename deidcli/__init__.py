"""deid: anonymize faces in video and photos without losing anything else."""

__version__ = "0.1.0"
