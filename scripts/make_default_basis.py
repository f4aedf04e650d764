"""Fit the eigenface basis that ships with deid: the 100 faces of scikit-image's ``lfw_subset`` (25 x 25 grey).

    python scripts/make_default_basis.py   # writes deidcli/methods/data/eigenfaces_lfw_subset.npz

The LFW crops sit around a CenterFace box like a square of 1.06 box heights (measured on these 100 faces), so
the basis is stored with that framing and deid cuts faces out of video the same way.
"""

from __future__ import annotations

import torch
from skimage import data

from deidcli.methods.eigenfaces import DEFAULT_BASIS, FaceBasis


def main() -> None:
    faces = torch.from_numpy(data.lfw_subset()[:100]).float()[:, None]  # the first 100 are faces, the rest not
    basis = FaceBasis.fit(faces, framing=1.06, source="scikit-image lfw_subset: 100 LFW faces, 25x25 grey")
    DEFAULT_BASIS.parent.mkdir(exist_ok=True)
    basis.save(DEFAULT_BASIS)
    print(f"{DEFAULT_BASIS}: {basis.rank} components of {basis.channels}x{basis.size}x{basis.size}")


if __name__ == "__main__":
    main()
