"""The band around a generated face: synthetic strands as strong as the original's texture, and no sharp outline."""

from __future__ import annotations

import torch

from deidcli.methods import naive, strands


def test_strands_are_fixed_unit_noise_drawn_along_circles_about_the_face():
    c = torch.tensor([[60.0, 60.0]])
    a, b = strands.strands(120, 120, c), strands.strands(120, 120, c)
    assert torch.equal(a, b)  # the same every frame: a tracked head's band does not flicker
    assert abs(float(a.std()) - 1) < 1e-3 and abs(float(a.mean())) < 1e-3
    s = a[0, 0]
    # right of the centre the circle runs vertically: neighbours along it are alike, across it they are not
    along = torch.corrcoef(torch.stack([s[40:80, 100], s[41:81, 100]]))[0, 1]
    across = torch.corrcoef(torch.stack([s[40:80, 100], s[40:80, 101]]))[0, 1]
    assert along > 0.6 and across < 0.3


def test_a_plain_background_stays_plain_and_texture_gets_strands_of_its_strength():
    g = torch.Generator().manual_seed(1)
    plain = torch.full((1, 3, 112, 112), 0.5)
    blurred = naive.gaussian_blur(plain, 6.0)
    centre = torch.tensor([[56.0, 56.0]])
    assert float((strands.hair_band(plain, blurred, centre) - blurred).abs().max()) < 1e-4
    grainy = (0.5 + 0.1 * torch.randn((1, 1, 112, 112), generator=g)).expand(1, 3, 112, 112).clamp(0, 1)
    band = strands.hair_band(grainy, naive.gaussian_blur(grainy, 6.0), centre)
    before = float(strands.texture_strength(grainy, 1.0)[..., 20:90, 20:90].mean())
    after = float(strands.texture_strength(band, 1.0)[..., 20:90, 20:90].mean())
    assert 0.5 * before < after < 1.5 * before


def test_the_band_keeps_no_sharp_outline():
    x = torch.zeros((1, 3, 112, 112))
    x[..., 40:, :] = 1.0  # a hairline: dark above, bright below
    out = strands.hair_band(x, naive.gaussian_blur(x, 6.0), torch.tensor([[56.0, 90.0]]))

    def sharpest(img):  # the steepest step across the hairline once the pixel-scale grain is smoothed away
        y = naive.gaussian_blur(img, 2.0)[0, 0, :, 56]
        return float((y[1:] - y[:-1]).abs().max())

    assert sharpest(out) < 0.5 * sharpest(x)
