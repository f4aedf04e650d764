"""Names, strengths and size scaling of the de-identification methods.

A method's ``strength`` is its own knob (``methods.md`` section 10), given for a 112-pixel face crop and scaled with
the region's height, so a face far from the camera and one filling the frame are anonymized alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deidcli.methods import naive

REFERENCE_SIZE = 112


@dataclass(frozen=True)
class Method:
    name: str
    default_strength: float
    strength_meaning: str
    stronger_is: str  # "higher" or "lower": which way of the knob removes more identity
    random: bool
    _fn: Callable[..., torch.Tensor]

    def __call__(
        self,
        crops: torch.Tensor,
        strength: float | None = None,
        generator: torch.Generator | None = None,
        color: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> torch.Tensor:
        """Apply to ``crops: (B, C, H, W)`` in ``[0, 1]``; pixel parameters are scaled by ``H / 112``."""
        s = self.default_strength if strength is None else float(strength)
        return self._fn(crops, s, crops.shape[-2] / REFERENCE_SIZE, generator, color)


def _blur(x, s, scale, g, color):
    return naive.fast_gaussian_blur(x, s * scale)


FROST_GRAIN = 0.08


def _frost(x, s, scale, g, color):
    # Grain after the blur: a deconvolution has nothing clean to invert, and no structure of the face survives.
    return naive.gaussian_noise(naive.fast_gaussian_blur(x, s * scale), FROST_GRAIN, generator=g)


def _pixelate(x, s, scale, g, color):
    return naive.pixelate(x, max(1, round(s * scale)))


def _noise(x, s, scale, g, color):
    return naive.gaussian_noise(x, s, generator=g)


def _impulse(x, s, scale, g, color):
    return naive.impulse_noise(x, s, generator=g)


def _solid(x, s, scale, g, color):
    return naive.solid(x, color, alpha=s)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "frost", 24.0, "blur sigma in pixels at a 112 px face, plus grain (std 0.08)", "higher", True, _frost
        ),
        Method("blur", 16.0, "Gaussian sigma in pixels at a 112 px face", "higher", False, _blur),
        Method("pixelate", 16.0, "mosaic cell size in pixels at a 112 px face", "higher", False, _pixelate),
        Method("noise", 0.3, "standard deviation of additive Gaussian noise (0-1 intensity)", "higher", True, _noise),
        Method("impulse", 0.3, "fraction of pixels set to salt or pepper", "higher", True, _impulse),
        Method("solid", 1.0, "opacity of the fill colour (below 1 with black = darkening)", "higher", False, _solid),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
