"""Reconstruction-based de-identification (methods.md section 2) as plain functions on batched tensors.

Each keeps the general structure of a face and drops the detail that carries identity: a low-rank approximation of
the crop itself (SVD), a projection onto an eigenface basis fitted on other people (PCA), a radial projection of the
whitened eigenface coefficients onto a sphere around the mean face (hypersphere), or the average of at least k
faces of the basis' gallery (k-Same). Crops are ``(B, C, H, W)`` floats in ``[0, 1]``; vectors are ``(B, D)`` with
``D = C * H * W``. Nothing here clips unless it says so, so the exactness properties of the spec can be tested.
"""

from __future__ import annotations

import torch


def svd_truncate(x: torch.Tensor, rank: int) -> torch.Tensor:
    """Best rank-``rank`` approximation of every channel of ``x: (B, C, H, W)`` (Eckart-Young), same shape.

    Uses the eigenvectors of the smaller Gram matrix (``X X^T`` or ``X^T X``) instead of a full SVD: the projection
    ``U_r U_r^T X`` needs only the leading left singular vectors, and a batched symmetric eigensolver on the short
    side is several times faster than ``torch.linalg.svd`` (``bench/method_speed.py``). Computed in float64 where
    the device allows it, because squaring the matrix squares its condition number.
    """
    h, w = x.shape[-2:]
    rank = max(0, int(rank))
    if rank >= min(h, w):
        return x.clone()
    work = torch.float64 if x.device.type == "cpu" else torch.float32
    m = x.to(work)
    tall = h > w  # project on the short side so the Gram matrix is min(H, W) square
    if tall:
        m = m.transpose(-1, -2)
    if rank == 0:
        return torch.zeros_like(x)
    _, vecs = torch.linalg.eigh(m @ m.transpose(-1, -2))  # ascending eigenvalues
    u = vecs[..., -rank:]
    out = u @ (u.transpose(-1, -2) @ m)
    if tall:
        out = out.transpose(-1, -2)
    return out.to(x.dtype)


def pca_project(v: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Coefficients ``(B, m)`` of vectors ``v: (B, D)`` in the orthonormal basis ``components: (m, D)``."""
    return (v - mean) @ components.T


def pca_reconstruct(v: torch.Tensor, mean: torch.Tensor, components: torch.Tensor, m: int) -> torch.Tensor:
    """``mean + W W^T (v - mean)`` with the first ``m`` rows of ``components`` as ``W^T``: ``(B, D)``."""
    w = components[: max(0, int(m))]
    return mean + ((v - mean) @ w.T) @ w


def hypersphere_project(
    v: torch.Tensor,
    mean: torch.Tensor,
    components: torch.Tensor,
    eigenvalues: torch.Tensor,
    radius: float,
    m: int = 64,
    blend: float = 1.0,
    keep_residual: bool = True,
) -> torch.Tensor:
    """Move each face's whitened coefficients radially onto the sphere of ``radius`` around the mean face.

    ``y = L^-1/2 W^T (v - mean)`` over the first ``m`` components; ``P(y) = r y / |y|``, or with ``blend`` below 1
    the soft version ``((1 - blend) |y| + blend r) y / |y|``. With ``keep_residual`` the detail outside the basis is
    kept (``v + W L^1/2 (P(y) - y)``, methods.md 2.3 with kappa = 1), otherwise the face is rebuilt from ``P(y)``
    alone. A face exactly at the mean (``y = 0``) is left where it is. Returns ``(B, D)``.
    """
    w = components[:m]
    sd = eigenvalues[:m].clamp_min(1e-12).sqrt()
    y = ((v - mean) @ w.T) / sd
    norm = y.norm(dim=1, keepdim=True)
    target = (1 - blend) * norm + blend * radius
    scale = torch.where(norm > 0, target / norm.clamp_min(1e-12), torch.ones_like(norm))
    py = y * scale
    if keep_residual:
        return v + ((py - y) * sd) @ w
    return mean + (py * sd) @ w


def ksame_clusters(features: torch.Tensor, k: int) -> torch.Tensor:
    """Partition ``features: (N, m)`` into groups of at least ``k`` (k-Same, Newton, Sweeney and Malin 2005).

    Greedy, deterministic: take the first face not yet assigned, group it with its ``k - 1`` nearest unassigned
    faces, repeat; fewer than ``k`` left over join their nearest group. Returns the group index ``(N,)`` of each
    face. Averaging each group gives every output face at least ``k`` sources: a recognizer that matches outputs
    back to the inputs can do no better than ``1/k``. With ``N < k`` there is one group of everything.
    """
    n = features.shape[0]
    labels = torch.full((n,), -1, dtype=torch.long)
    if n == 0:
        return labels
    d = torch.cdist(features.double(), features.double())
    group = 0
    while int((labels < 0).sum()) >= k:
        free = torch.nonzero(labels < 0).flatten()
        seed = int(free[0])
        nearest = free[torch.argsort(d[seed, free], stable=True)[:k]]
        labels[nearest] = group
        group += 1
    left = torch.nonzero(labels < 0).flatten()
    if len(left):
        if group == 0:
            labels[left] = 0
        else:
            centroids = torch.stack([features[labels == g].double().mean(0) for g in range(group)])
            labels[left] = torch.cdist(features[left].double(), centroids).argmin(1)
    return labels


def group_means(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of ``values: (N, D)`` over each group in ``labels: (N,)``: ``(G, D)`` with ``G = labels.max() + 1``."""
    g = int(labels.max()) + 1
    sums = torch.zeros((g, values.shape[1]), dtype=values.dtype, device=values.device)
    sums.index_add_(0, labels.to(values.device), values)
    counts = torch.bincount(labels, minlength=g).to(values)
    return sums / counts[:, None]
