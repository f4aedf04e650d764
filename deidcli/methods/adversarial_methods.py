"""The adversarial methods at frame level: a change people barely see, made so machines fail on the face.

* ``ifgvm``: open-set dodging against FaceNet (white box): the face square is moved, within an L-infinity budget,
  until its embedding is ``strength`` away from the original's (unit vectors; 1.0 is FaceNet's match distance), so
  a search by face no longer finds the person. Deterministic: the same face gets the same change.
De-detection is measured by `deid evaluate --attack dedetect` on face crops, but is not offered here: a face
de-detected in its crop was still found by MTCNN in the whole frame (other pyramid alignment, more context).

The method changes the face square at the region's own resolution and paste it back without feathering: the change is
already invisible, and a feathered edge would cut into the pattern that makes it work.
"""

from __future__ import annotations

import torch

from deidcli.methods import adversarial as adv
from deidcli.methods.basis_methods import face_square

STEPS = 50
ALPHA = 1 / 255
EPS = 4 / 255  # at most 4 grey levels per pixel: face PSNR stays above about 36 dB whatever happens


def _attack_square(x: torch.Tensor, inner: float, framing: float, attack) -> torch.Tensor:
    """Attack the face square at its own resolution: the model resamples it inside the loop, exactly as it will
    when it reads the output, so the change survives (a change made at 160 px and resampled back did not)."""
    dtype = x.dtype
    x = x.float()
    _, _, h, w = x.shape
    y0, y1, x0, x1 = face_square(h, w, inner, framing)
    out = x.clone()
    out[..., y0:y1, x0:x1] = attack(x[..., y0:y1, x0:x1].contiguous())
    return out.to(dtype)


def ifgvm_method(x, s, scale, g, color, inner, track, model):
    rec = model

    def attack(face):
        return adv.ifgvm_embedding(face, rec.embed, min_distance=s, steps=STEPS, alpha=ALPHA, eps=EPS).x

    return _attack_square(x, inner, rec.framing, attack)
