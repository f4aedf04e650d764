"""The reconstruction methods' properties from methods.md section 2 (SVD, PCA, hypersphere) and k-Same's guarantee."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared
from deidcli.methods import get_method
from deidcli.methods.basis_methods import BasisModel
from deidcli.methods.eigenfaces import DEFAULT_BASIS, FaceBasis
from deidcli.methods.reconstruction import (
    group_means,
    hypersphere_project,
    ksame_clusters,
    pca_reconstruct,
    svd_truncate,
)
from deidcli.methods.regions import RegionStyle, anonymize_frame
from deidcli.detections import Detections


def images(device, dtype, b=3, c=3, h=40, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, c, h, w), generator=g).to(device=device, dtype=dtype)


def tol(dtype):
    return 1e-4 if dtype == torch.float32 else 1e-9


# --- SVD-DID (2.2) ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [1, 4, 8])
@pytest.mark.parametrize("hw", [(40, 32), (32, 40)], ids=["tall", "wide"])
def test_svd_rank_and_eckart_young(r, hw, device, dtype):
    x = images(device, dtype, h=hw[0], w=hw[1])
    y = svd_truncate(x, r)
    s_in = torch.linalg.svdvals(x.double())
    s_out = torch.linalg.svdvals(y.double())
    assert int((s_out > 1e-5 * s_out[..., :1]).sum(-1).max()) <= r  # numerical rank <= r
    err = (x.double() - y.double()).pow(2).sum((-2, -1))
    expected = s_in[..., r:].pow(2).sum(-1)  # the energy of the dropped singular values
    assert torch.allclose(err, expected, rtol=1e-3 if dtype == torch.float32 else 1e-6)


def test_svd_full_rank_is_identity_and_idempotent(device, dtype):
    x = images(device, dtype)
    assert torch.allclose(svd_truncate(x, 32), x, atol=tol(dtype))
    y = svd_truncate(x, 5)
    assert torch.allclose(svd_truncate(y, 5), y, atol=1e-4 if dtype == torch.float32 else 1e-8)


def test_svd_matches_torch_svd(device, dtype):
    x = images(device, dtype)
    u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    ref = u[..., :6] @ (s[..., :6, None] * vh[..., :6, :])
    assert torch.allclose(svd_truncate(x, 6).double(), ref, atol=1e-4 if dtype == torch.float32 else 1e-8)


def test_svd_error_and_energy_monotone_in_rank(device, dtype):
    x = images(device, dtype)
    errs, energy = [], []
    for r in (1, 2, 4, 8, 16, 32):
        y = svd_truncate(x, r).double()
        errs.append(float((x.double() - y).norm()))
        energy.append(float(y.norm()))
    assert all(b <= a + 1e-6 for a, b in zip(errs, errs[1:]))
    assert all(b >= a - 1e-6 for a, b in zip(energy, energy[1:]))


def test_svd_batched_equals_looped(device, dtype):
    x = images(device, dtype, b=4)
    batched = svd_truncate(x, 3)
    looped = torch.cat([svd_truncate(x[i : i + 1], 3) for i in range(4)])
    assert torch.allclose(batched, looped, atol=tol(dtype))


# --- PCA (2.1) -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    """A basis fitted on 30 random 'faces' of 3 x 8 x 8 (n < D, so the Gram side of the SVD is exercised)."""
    g = torch.Generator().manual_seed(1)
    train = torch.rand((30, 3, 8, 8), generator=g)
    return train, FaceBasis.fit(train)


def test_pca_properties(fitted, device):
    train, basis = fitted
    b = basis.to(device)
    v = train.reshape(30, -1).to(device)
    held = torch.rand((5, 192), generator=torch.Generator().manual_seed(2)).to(device)
    y = pca_reconstruct(held, b.mean, b.components, 10)
    assert torch.allclose(pca_reconstruct(y, b.mean, b.components, 10), y, atol=1e-5)  # idempotent
    assert (((held - y) @ b.components[:10].T).abs() < 1e-4).all()  # residual orthogonal to the subspace
    assert torch.allclose(pca_reconstruct(held, b.mean, b.components, 0), b.mean.expand(5, -1))  # m = 0: the mean
    assert torch.allclose(pca_reconstruct(v, b.mean, b.components, b.rank), v, atol=1e-4)  # full rank: exact
    assert torch.allclose(pca_reconstruct(v, b.mean, b.components, 7).mean(0), b.mean, atol=1e-5)
    errs = [float((held - pca_reconstruct(held, b.mean, b.components, m)).norm()) for m in (0, 2, 5, 10, 20, 29)]
    assert all(e2 <= e1 + 1e-5 for e1, e2 in zip(errs, errs[1:]))
    looped = torch.cat([pca_reconstruct(held[i : i + 1], b.mean, b.components, 10) for i in range(5)])
    assert torch.allclose(y, looped, atol=1e-6)


def test_basis_round_trips_through_a_file(fitted, tmp_path):
    _, basis = fitted
    basis.save(tmp_path / "b.npz")
    back = FaceBasis.load(tmp_path / "b.npz")
    assert torch.equal(back.components, basis.components) and back.size == 8 and back.channels == 3


def test_bundled_basis_loads():
    b = FaceBasis.load()
    assert DEFAULT_BASIS.is_file() and b.size == 25 and b.channels == 1 and b.rank == 99
    assert b.gallery.shape == (100, 99)


# --- Hypersphere (2.3) -----------------------------------------------------------------------------------------


def _whitened(v, b, m):
    return ((v - b.mean) @ b.components[:m].T) / b.eigenvalues[:m].sqrt()


def test_hypersphere_properties(fitted, device):
    _, basis = fitted
    b = basis.to(device)
    m = 16
    v = torch.rand((6, 192), generator=torch.Generator().manual_seed(3)).to(device)

    def proj(x, r=3.0, blend=1.0):
        return hypersphere_project(x, b.mean, b.components, b.eigenvalues, r, m, blend)

    y = proj(v)
    wy, wv = _whitened(y, b, m), _whitened(v, b, m)
    assert torch.allclose(wy.norm(dim=1), torch.full((6,), 3.0, device=device), atol=1e-4)  # on the sphere
    assert torch.allclose(torch.nn.functional.cosine_similarity(wy, wv), torch.ones(6, device=device), atol=1e-5)
    assert torch.allclose(proj(y), y, atol=1e-4)  # idempotent
    on_sphere = proj(v, r=float(wv[0].norm()))[:1]
    assert torch.allclose(on_sphere, v[:1], atol=1e-4)  # already at the radius: unchanged
    mean_face = proj(b.mean[None])
    assert torch.isfinite(mean_face).all() and torch.allclose(mean_face, b.mean[None], atol=1e-6)  # y = c
    assert torch.allclose(proj(v, blend=0.0), v, atol=1e-5)  # lambda = 0 is the identity
    looped = torch.cat([proj(v[i : i + 1]) for i in range(6)])
    assert torch.allclose(y, looped, atol=1e-5)


# --- k-Same (Newton, Sweeney, Malin) ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(100, 5), (23, 5), (7, 5), (3, 5), (50, 1)])
def test_ksame_groups_have_at_least_k(n, k):
    feats = torch.randn((n, 6), generator=torch.Generator().manual_seed(n))
    labels = ksame_clusters(feats, k)
    counts = torch.bincount(labels)
    assert (labels >= 0).all()
    assert int(counts.min()) >= min(k, n)
    assert torch.equal(labels, ksame_clusters(feats, k))  # deterministic


def test_ksame_every_output_is_shared_by_k_inputs_on_real_faces():
    """methods.md 12.4 on 61 real photos: group the faces, replace each by its group's mean; every distinct output
    face then stands for at least k = 5 input faces."""
    folder = shared("identities")
    from deidcli.detection import build_detector
    from deidcli.photos import cut_face, load_photos

    photos = [p for p in load_photos(folder, build_detector("centerface", None, "cpu")) if p.box is not None]
    x = torch.cat([cut_face(p.image, p.box, 1.06, 32) for p in photos]).reshape(len(photos), -1)
    basis = FaceBasis.fit(x.reshape(-1, 3, 32, 32))
    feats = (x - basis.mean) @ basis.components.T
    labels = ksame_clusters(feats, 5)
    out = group_means(x, labels)[labels]
    _, inverse, counts = torch.unique(out, dim=0, return_inverse=True, return_counts=True)
    assert len(photos) >= 55
    assert int(counts.min()) >= 5
    # each output is exactly the mean of its sources, so none of them is returned as it was
    assert not any(torch.allclose(out[i], x[i], atol=1e-3) for i in range(len(x)))


def test_ksame_method_outputs_a_mean_of_k_gallery_faces():
    basis = FaceBasis.load()
    model = BasisModel(basis)
    labels, means = model.groups(5)
    assert int(torch.bincount(labels).min()) >= 5
    probes = torch.rand((8, basis.components.shape[1]), generator=torch.Generator().manual_seed(0))
    out = model.ksame(probes, 5)
    gallery_faces = basis.mean + basis.gallery @ basis.components
    for row in out:
        hits = [g for g in range(len(means)) if torch.allclose(row, gallery_faces[labels == g].mean(0), atol=1e-4)]
        assert len(hits) == 1 and int((labels == hits[0]).sum()) >= 5


def test_ksame_keeps_a_track_in_its_group():
    model = BasisModel(FaceBasis.load())
    d = model.basis.components.shape[1]
    a, b = torch.zeros((1, d)), torch.ones((1, d))
    first = model.ksame(a, 5, track=7)
    assert torch.equal(model.ksame(b, 5, track=7), first)  # same track: same face, whatever it looks like now
    assert not torch.equal(model.ksame(b, 5, track=8), first)


# --- frame level -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["svd", "pca", "hypersphere", "ksame"])
def test_methods_change_only_the_region(name):
    rng = np.random.default_rng(0)
    img = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    det = Detections(np.array([[40, 20, 100, 100]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
    style = RegionStyle(get_method(name), strength=2 if name != "ksame" else 5, mask_scale=1.3)
    out = anonymize_frame(img, det, style)
    changed = np.abs(out.astype(int) - img.astype(int)).sum(2) > 0
    assert changed[40:100, 50:90].mean() > 0.9
    ys, xs = np.nonzero(changed)
    assert ys.min() >= 20 - 13 and ys.max() < 100 + 13 and xs.min() >= 40 - 10 and xs.max() < 100 + 10


def test_unknown_basis_file_is_a_clear_error(tmp_path):
    from deidcli.errors import ModelUnavailableError

    (tmp_path / "x.npz").write_bytes(b"not a zip")
    for path in (tmp_path / "x.npz", tmp_path / "missing.npz"):
        with pytest.raises(ModelUnavailableError, match="--basis"):
            get_method("pca", path)


# --- through the CLI -------------------------------------------------------------------------------------------


def _frames(path):
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize("name", ["svd", "pca", "hypersphere", "ksame"])
def test_every_reconstruction_method_runs_on_a_video(tmp_path, sample, name):
    from conftest import run_deid

    out = tmp_path / "out.mp4"
    r = run_deid("run", sample, "-o", out, "--method", name, "--report", tmp_path / "r.json", "-q")
    assert r.returncode == 0, r.stderr
    a, b = _frames(sample), _frames(out)
    assert len(a) == len(b) == 75
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["methods"]["face"]["name"] == name
    box = report["files"][0]["faces_per_frame"]
    assert all(n >= 1 for n in box)
    # The astronaut's face (centre of the first frame's detection) is changed in every sampled frame.
    from deidcli.detection import build_detector

    det = build_detector("centerface", None, "cpu")
    for i in (0, 37, 74):
        x1, y1, x2, y2 = det.detect(a[i], 1.0).xyxy[0].astype(int)
        diff = np.abs(a[i][y1:y2, x1:x2].astype(int) - b[i][y1:y2, x1:x2].astype(int)).mean()
        assert diff > (1.0 if name == "hypersphere" else 4.0), (i, diff)


def test_fit_pca_cli_makes_a_basis_run_can_use(tmp_path, sample):
    from conftest import run_deid

    folder = shared("identities")
    faces = tmp_path / "faces"
    faces.mkdir()
    for f in sorted(folder.glob("img*.jpg"))[:12]:
        (faces / f.name).symlink_to(f)
    basis = tmp_path / "b.npz"
    r = run_deid("fit", "pca", "--faces", faces, "-o", basis, "--size", "24")
    assert r.returncode == 0, r.stderr
    b = FaceBasis.load(basis)
    assert (b.size, b.channels, b.rank) == (24, 3, 11)
    assert run_deid("fit", "pca", "--faces", faces, "-o", basis).returncode == 7  # exists: not replaced
    out = tmp_path / "out.mp4"
    r = run_deid("run", sample, "-o", out, "--method", "ksame", "--strength", "3", "--basis", basis, "-q")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["svd", "pca", "hypersphere", "ksame"])
@pytest.mark.parametrize("box", [(50, 50, 54, 55), (10, 10, 30, 34), (-40, -30, 200, 150)], ids=["tiny", "small", "edge"])
def test_any_region_size(name, box):
    """From a 4 px face to one cut by the frame edge: no error, output in range, only the region touched."""
    rng = np.random.default_rng(2)
    img = (rng.random((100, 120, 3)) * 255).astype(np.uint8)
    det = Detections(np.array([box], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
    style = RegionStyle(get_method(name))
    out = anonymize_frame(img, det, style)
    assert out.shape == img.shape and out.dtype == np.uint8
    x1, y1, x2, y2 = box
    half = style.mask_scale / 2
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * half + 1, (y2 - y1) * half + 1
    ys, xs = np.nonzero(np.abs(out.astype(int) - img.astype(int)).sum(2))
    assert len(ys) and (np.abs(ys - cy) <= hh).all() and (np.abs(xs - cx) <= hw).all()
