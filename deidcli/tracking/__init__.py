"""Linking detections over time so a face is covered in every frame, including those its detector missed."""

from deidcli.tracking.coverage import CoverageSettings, TemporalCoverage
from deidcli.tracking.tracker import ByteTracker

__all__ = ["ByteTracker", "CoverageSettings", "TemporalCoverage"]
