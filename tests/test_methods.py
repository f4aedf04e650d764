"""The naive methods' properties from methods.md sections 1.1-1.5, on every device and dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from deidcli.methods import METHODS, get_method
from deidcli.methods import naive



def faces(device, dtype, b=3, h=112, w=96, seed=0):
    """Smooth random images with structure at several scales (noise alone makes blur trivially strong)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, 3, h // 8, w // 8), generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    x = 0.7 * x + 0.3 * torch.rand((b, 3, h, w), generator=g)
    return x.to(device=device, dtype=dtype)


def gen(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


# The adversarial methods need a face for their models to act on; tests/test_adversarial.py covers them.
@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.needs in (None, "basis")])
def test_shape_dtype_device_range(name, device, dtype):
    x = faces(device, dtype)
    y = get_method(name, device=device)(x, generator=gen(device))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x), "default strength must change the crop"


# gan needs a trained model: its determinism is tested on a small one in test_generative.py
@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.random and m.needs != "generative"])
def test_seeded_determinism(name, device, dtype):
    x = faces(device, dtype)
    m = get_method(name)
    a, b = m(x, generator=gen(device, 7)), m(x, generator=gen(device, 7))
    c = m(x, generator=gen(device, 8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _distance(name, strength, x, device):
    y = get_method(name, device=device)(x, strength, generator=gen(device, 1))
    return float((y - x).pow(2).mean())


@pytest.mark.parametrize(
    "name,strengths",
    [
        ("blur", [1, 2, 3, 5, 8, 12]),
        ("frost", [4, 8, 16, 24, 32]),
        ("pixelate", [2, 4, 8, 12, 16]),
        ("noise", [0.02, 0.05, 0.1, 0.2, 0.3]),
        ("impulse", [0.02, 0.05, 0.1, 0.2, 0.4]),
        ("solid", [0.2, 0.4, 0.7, 0.85, 1.0]),
        ("svd", [64, 32, 16, 8, 4, 2]),
        ("pca", [64, 32, 16, 8, 4, 0]),
    ],
)
def test_strength_is_monotonic(name, strengths, device, dtype):
    """Stronger settings move the crop further from the original (the sweep values of methods.md)."""
    x = faces(device, dtype)
    d = [_distance(name, s, x, device) for s in strengths]
    assert all(b > a for a, b in zip(d, d[1:])), d


# --- 1.1 Gaussian blur ---------------------------------------------------------------------------

def test_blur_constant_image_unchanged(device, dtype):
    x = torch.full((2, 3, 40, 50), 0.37, device=device, dtype=dtype)
    assert torch.allclose(naive.gaussian_blur(x, 5.0), x, atol=1e-6)


def test_blur_linear(device, dtype):
    x, y = faces(device, dtype, seed=1), faces(device, dtype, seed=2)
    lhs = naive.gaussian_blur(0.3 * x + 0.5 * y, 3.0, clip=False)
    rhs = 0.3 * naive.gaussian_blur(x, 3.0, clip=False) + 0.5 * naive.gaussian_blur(y, 3.0, clip=False)
    assert torch.allclose(lhs, rhs, atol=1e-5)


def test_blur_tiny_sigma_is_identity(device, dtype):
    x = faces(device, dtype)
    assert torch.equal(naive.gaussian_blur(x, 0.2), x)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 5.0])
def test_blur_matches_scipy(sigma, dtype):
    x = faces("cpu", dtype, b=1)
    ours = naive.gaussian_blur(x, sigma, clip=False)[0].double().numpy()
    radius = int(np.ceil(3 * sigma))
    ref = np.stack(
        [gaussian_filter(c, sigma, mode="mirror", truncate=(radius - 0.49) / sigma) for c in x[0].double().numpy()]
    )
    assert np.abs(ours - ref).max() < 1e-4


def test_blur_batched_equals_looped(device, dtype):
    x = faces(device, dtype, b=4)
    batched = naive.gaussian_blur(x, 4.0)
    looped = torch.cat([naive.gaussian_blur(x[i : i + 1], 4.0) for i in range(4)])
    assert torch.allclose(batched, looped, atol=1e-6)


def test_blur_kernel_wider_than_crop(device, dtype):
    x = faces(device, dtype, h=12, w=9)
    y = naive.gaussian_blur(x, 30.0)
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("sigma", [4.0, 8.0, 16.0, 40.0])
def test_fast_blur_close_to_exact(sigma, device, dtype):
    x = faces(device, dtype, b=2, h=224, w=200)
    exact = naive.gaussian_blur(x, sigma)
    fast = naive.fast_gaussian_blur(x, sigma)
    assert float((fast - exact).abs().mean()) < 0.01
    assert float((fast - exact).abs().max()) < 0.1  # worst at the crop border, under the feathered mask edge


# --- 1.2 Pixelation --------------------------------------------------------------------------------

def test_pixelate_idempotent_and_blocks_constant(device, dtype):
    x = faces(device, dtype, h=112, w=96)
    y = naive.pixelate(x, 8)
    assert torch.allclose(naive.pixelate(y, 8), y, atol=1e-6)
    blocks = y.unfold(2, 8, 8).unfold(3, 8, 8)  # B, C, 14, 12, 8, 8
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6)
    assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)


def test_pixelate_block_one_is_identity(device, dtype):
    x = faces(device, dtype)
    assert torch.equal(naive.pixelate(x, 1), x)


def test_pixelate_unique_values_bounded(device, dtype):
    x = faces(device, dtype, h=50, w=37)
    y = naive.pixelate(x, 8)
    for c in range(3):
        assert torch.unique(y[0, c]).numel() <= 7 * 5


# --- 1.3 Gaussian noise ----------------------------------------------------------------------------

def test_noise_statistics_and_psnr(device, dtype):
    x = torch.full((2, 3, 128, 128), 0.5, device=device, dtype=dtype)
    std = 0.08
    y = naive.gaussian_noise(x, std, generator=gen(device, 3))
    d = (y - x).double()
    n = d.numel()
    assert abs(float(d.mean())) < 3 * std / n**0.5
    assert abs(float(d.std()) - std) < 0.05 * std
    psnr = -10 * np.log10(float(d.pow(2).mean()))
    assert abs(psnr - (-20 * np.log10(std))) < 0.5
    # independent noise across the batch
    corr = np.corrcoef(d[0].flatten().cpu().numpy(), d[1].flatten().cpu().numpy())[0, 1]
    assert abs(corr) < 0.02


def test_noise_zero_is_identity(device, dtype):
    x = faces(device, dtype)
    assert torch.equal(naive.gaussian_noise(x, 0.0), x)


# --- 1.4 Impulse noise -----------------------------------------------------------------------------

def test_impulse_density_values_and_salt_ratio(device, dtype):
    x = faces(device, dtype, b=2, h=128, w=128)
    d = 0.1
    y = naive.impulse_noise(x, d, salt=0.5, generator=gen(device, 5))
    changed = (y != x).any(dim=1)  # positions, shared across channels
    n = changed.numel()
    frac = float(changed.double().mean())
    assert abs(frac - d) < 4 * (d * (1 - d) / n) ** 0.5
    hit_values = y.permute(0, 2, 3, 1)[changed]
    assert torch.all((hit_values == 0) | (hit_values == 1))
    assert torch.equal(y.permute(0, 2, 3, 1)[~changed], x.permute(0, 2, 3, 1)[~changed])
    salt = float((hit_values[:, 0] == 1).double().mean())
    assert abs(salt - 0.5) < 0.05


def test_impulse_extremes(device, dtype):
    x = faces(device, dtype)
    assert torch.equal(naive.impulse_noise(x, 0.0), x)
    y = naive.impulse_noise(x, 1.0, generator=gen(device))
    assert torch.all((y == 0) | (y == 1))


# --- 1.5 Darkening / solid fill --------------------------------------------------------------------

def test_darkening_is_gamma_scaling(device, dtype):
    x = faces(device, dtype)
    gamma = 0.3
    y = naive.solid(x, (0, 0, 0), alpha=1 - gamma)
    assert float(y.max()) <= gamma + 1e-6
    assert torch.allclose(y, gamma * x, atol=1e-6)
    assert torch.equal(naive.solid(x, (0, 0, 0), alpha=0.0), x)


def test_solid_fills_with_colour(device, dtype):
    x = faces(device, dtype)
    y = naive.solid(x, (1.0, 0.5, 0.0), alpha=1.0)
    assert torch.allclose(y[:, 0], torch.ones_like(y[:, 0]))
    assert torch.allclose(y[:, 1], torch.full_like(y[:, 1], 0.5))
    assert torch.allclose(y[:, 2], torch.zeros_like(y[:, 2]))


def test_strength_scales_with_region_size():
    """The same setting removes the same share of detail from a small and a large face."""
    small = faces("cpu", torch.float32, b=1, h=56, w=56)
    large = torch.nn.functional.interpolate(small, scale_factor=4, mode="bilinear", align_corners=False)
    m = get_method("pixelate")
    ys, yl = m(small, 16), m(large, 16)
    # Same number of mosaic cells either way.
    assert torch.unique(ys[0, 0]).numel() == torch.unique(yl[0, 0]).numel()


def test_fast_blur_writes_the_same_bytes_on_one_thread_and_two():
    """A batch's workers run one thread each: their outputs must hash as a single run's do."""
    from deidcli.methods.naive import fast_gaussian_blur, upsample_bilinear

    x = torch.rand(4, 3, 210, 150, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            outs.append((fast_gaussian_blur(x, 20.0), upsample_bilinear(x[:, :, :30, :20], 210, 150)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    ref = torch.nn.functional.interpolate(x[:, :, :30, :20], size=(210, 150), mode="bilinear", align_corners=False)
    assert (outs[0][1] - ref).abs().max() < 1e-5
