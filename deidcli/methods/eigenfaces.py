"""An eigenface basis (PCA of face crops of other people) for the pca, hypersphere and ksame methods.

Fitted once (``deid fit pca --faces DIR``) and stored as a small ``.npz``; the default one ships with deid, fitted
on the 100 faces of scikit-image's ``lfw_subset`` (25 x 25 grey, public photos of Labeled Faces in the Wild) by
``scripts/make_default_basis.py``. A grey basis rebuilds luminance only; colour comes from the region itself at
the basis' resolution, which carries no identity.

Crops are framed alike at fit time and at run time: a square of ``framing`` times the detector's box height,
centred on the box (1.06 matches how the LFW crops sit around a CenterFace box).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deidcli.errors import ModelUnavailableError

DEFAULT_BASIS = Path(__file__).parent / "data" / "eigenfaces_lfw_subset.npz"
FORMAT = "deid-eigenfaces/1"
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class FaceBasis:
    """``mean: (D,)``, orthonormal ``components: (m, D)``, their ``eigenvalues: (m,)``, and the fitted faces'
    coefficients ``gallery: (n, m)`` (k-Same averages them), for crops of ``channels x size x size``."""

    mean: torch.Tensor
    components: torch.Tensor
    eigenvalues: torch.Tensor
    gallery: torch.Tensor
    size: int
    channels: int
    framing: float = 1.06
    source: str = ""

    @classmethod
    def fit(cls, crops: torch.Tensor, framing: float = 1.06, source: str = "") -> "FaceBasis":
        """PCA of ``crops: (N, C, S, S)`` in ``[0, 1]`` (exact SVD of the centred data, in float64)."""
        n, c, s, _ = crops.shape
        if n < 2:
            raise ValueError("an eigenface basis needs at least 2 faces")
        x = crops.reshape(n, -1).double()
        mean = x.mean(0)
        _, sv, vh = torch.linalg.svd(x - mean, full_matrices=False)
        keep = sv > sv[0] * 1e-6  # n faces span at most n - 1 directions around their mean
        comps, eig = vh[keep], sv[keep] ** 2 / (n - 1)
        gallery = (x - mean) @ comps.T
        return cls(mean.float(), comps.float(), eig.float(), gallery.float(), s, c, framing, source)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, format=FORMAT, mean=self.mean.numpy(), components=self.components.numpy(),
            eigenvalues=self.eigenvalues.numpy(), gallery=self.gallery.numpy(), size=self.size,
            channels=self.channels, framing=self.framing, source=self.source,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> "FaceBasis":
        """The basis at ``path``, or the one that ships with deid."""
        path = Path(path) if path else DEFAULT_BASIS
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise ValueError(f"format {z['format']}")
                return cls(
                    torch.from_numpy(z["mean"]), torch.from_numpy(z["components"]),
                    torch.from_numpy(z["eigenvalues"]), torch.from_numpy(z["gallery"]), int(z["size"]),
                    int(z["channels"]), float(z["framing"]), str(z["source"]),
                )
        except FileNotFoundError:
            raise ModelUnavailableError(f"--basis {path}: no such file (make one with 'deid fit pca')") from None
        except (ValueError, KeyError, OSError) as exc:
            raise ModelUnavailableError(f"--basis {path}: not an eigenface basis from 'deid fit pca' ({exc})") from None

    def to(self, device: torch.device | str) -> "FaceBasis":
        return replace(
            self, mean=self.mean.to(device), components=self.components.to(device),
            eigenvalues=self.eigenvalues.to(device), gallery=self.gallery.to(device),
        )

    @property
    def rank(self) -> int:
        return int(self.components.shape[0])


def luminance(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB to ``(B, 1, H, W)`` luma (BT.601 weights)."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of ``(B, C, H, W)``."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def to_vectors(faces: torch.Tensor, basis: FaceBasis) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB ``faces: (B, 3, H, W)`` at the basis' size and channels: ``(vectors (B, D), low-res RGB (B, 3, S, S))``."""
    small = resize(faces, basis.size, basis.size)
    v = luminance(small) if basis.channels == 1 else small
    return v.reshape(len(faces), -1), small


CHROMA_SIZE = 4  # a grey basis takes the face's colour at 4 x 4: skin tone, no features (lips, eyes)


def from_vectors(v: torch.Tensor, small: torch.Tensor, basis: FaceBasis, chroma_size: int | None = CHROMA_SIZE
                 ) -> torch.Tensor:
    """Rebuilt ``vectors (B, D)`` back to RGB ``(B, 3, S, S)``; a grey basis takes its colour from ``small``'s
    chroma, smoothed to ``chroma_size`` cells (None: at the basis' resolution)."""
    img = v.reshape(len(v), basis.channels, basis.size, basis.size)
    if basis.channels == 1:
        chroma = small - luminance(small)
        if chroma_size:
            chroma = resize(resize(chroma, chroma_size, chroma_size), basis.size, basis.size)
        img = img + chroma
    return img
