"""The eigenface methods at frame level: cut the face square out of a region, rebuild it, paste it back.

A region crop is the detector's box grown by the mask scale; the basis was fitted on a square of ``framing`` times
the box height around the box. That square is resampled to the basis' size, rebuilt there, and resampled back; the
band between the square and the region edge (hair, ears) is blurred, and the square is feathered into it so no seam
shows. The same person keeps the same k-Same group for the whole track, so the face does not switch mid-shot.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import torch

from deidcli.methods import naive
from deidcli.methods.eigenfaces import CHROMA_SIZE, FaceBasis, from_vectors, resize, to_vectors
from deidcli.methods.reconstruction import (
    group_means,
    hypersphere_project,
    ksame_clusters,
    pca_reconstruct,
)

BAND_BLUR = 24.0  # sigma at a 112 px region (as frost), for the band around the rebuilt face square
FEATHER = 0.12  # fraction of the square's side over which it fades into the band
HYPERSPHERE_DIMS = 64


@dataclass
class BasisModel:
    """A loaded basis plus the per-run state of k-Same (groups per k, the group each track was given)."""

    basis: FaceBasis
    _groups: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    _track_group: dict[tuple[int, Hashable], int] = field(default_factory=dict)

    def groups(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Group label of each gallery face ``(n,)`` and each group's mean coefficients ``(G, m)`` for this k."""
        if k not in self._groups:
            gallery = self.basis.gallery
            labels = ksame_clusters(gallery.cpu(), k)
            self._groups[k] = (labels, group_means(gallery, labels.to(gallery.device)))
        return self._groups[k]

    def ksame(self, v: torch.Tensor, k: int, track: Hashable | None = None) -> torch.Tensor:
        """Each face vector ``(B, D)`` replaced by the mean of its nearest group of at least ``k`` gallery faces."""
        b = self.basis
        _, means = self.groups(k)
        coeffs = (v - b.mean) @ b.components.T
        nearest = torch.cdist(coeffs, means).argmin(1)
        if track is not None:  # first sight decides, so the face does not change group along the track
            key = (k, track)
            nearest[:] = self._track_group.setdefault(key, int(nearest[0]))
        return b.mean + means[nearest] @ b.components


def face_square(height: int, width: int, inner: float, framing: float) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the basis-framed face square in a region crop whose box takes ``inner`` of it."""
    side = framing * inner * height
    cy, cx = height / 2, width / 2
    y0, y1 = max(0, round(cy - side / 2)), min(height, round(cy + side / 2))
    x0, x1 = max(0, round(cx - side / 2)), min(width, round(cx + side / 2))
    return y0, max(y1, y0 + 1), x0, max(x1, x0 + 1)


def _square_feather(h: int, w: int, device: torch.device) -> torch.Tensor:
    def ramp(n: int) -> torch.Tensor:
        t = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
        return (torch.minimum(t, 1 - t) / FEATHER).clamp(0, 1)

    return (ramp(h)[:, None] * ramp(w)[None, :])[None, None]


def rebuild_faces(crops: torch.Tensor, inner: float, basis: FaceBasis, rebuild) -> torch.Tensor:
    """Apply ``rebuild(vectors (B, D), low-res RGB) -> vectors`` to the face square of every region crop.

    ``crops: (B, 3, H, W)`` in ``[0, 1]``; returns the same shape, clipped. The face square becomes the rebuilt face
    at the basis' resolution, in a blurred band.
    """
    dtype = crops.dtype
    crops = crops.to(basis.mean.dtype)  # the basis is float32; float64 crops come back as float64
    _, _, h, w = crops.shape
    y0, y1, x0, x1 = face_square(h, w, inner, basis.framing)
    faces = crops[..., y0:y1, x0:x1]
    v, small = to_vectors(faces, basis)
    rebuilt = from_vectors(rebuild(v, small), small, basis, CHROMA_SIZE)
    m = _square_feather(y1 - y0, x1 - x0, crops.device)
    out = naive.fast_gaussian_blur(crops, BAND_BLUR * h / 112)
    face = resize(rebuilt.clamp(0, 1), y1 - y0, x1 - x0)
    out[..., y0:y1, x0:x1] = m * face + (1 - m) * out[..., y0:y1, x0:x1]
    return out.clamp(0, 1).to(dtype)


def pca_method(x, s, scale, g, color, inner, track, model: BasisModel):
    b = model.basis
    return rebuild_faces(x, inner, b, lambda v, small: pca_reconstruct(v, b.mean, b.components, int(s)))


def hypersphere_method(x, s, scale, g, color, inner, track, model: BasisModel):
    # The face is rebuilt from its projected coefficients alone (methods.md 2.3, kappa = 0): with the detail outside
    # the basis kept (kappa = 1) dlib and FaceNet still named half the people even at radius 0, where nothing of
    # the face's own coefficients is left.
    b = model.basis
    dims = min(HYPERSPHERE_DIMS, b.rank)
    return rebuild_faces(
        x, inner, b,
        lambda v, small: hypersphere_project(v, b.mean, b.components, b.eigenvalues, s, dims, keep_residual=False),
    )


def ksame_method(x, s, scale, g, color, inner, track, model: BasisModel):
    return rebuild_faces(x, inner, model.basis, lambda v, small: model.ksame(v, max(1, int(s)), track))
