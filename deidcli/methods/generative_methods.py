"""The generative methods at region level: frame the face for the decoder, make a new one, put it back.

Every method here works in the decoder's 64 x 64 square (:mod:`deidcli.generative.face_warp`): the face is warped
there from its box (or its landmarks), a new face is made, colour-matched to the old one inside the face ellipse (skin
tone and light are kept; a mean and a spread per channel say nothing of who it is), and warped back over the face.
The rest of the region (hair, ears, the band around the face) keeps only its colours, blurred as before (a sharper
band let FaceNet name people from their hair: docs/methods.md), with synthetic strands as strong as its own texture
(:mod:`deidcli.methods.strands`): it reads as hair, not as a flat oval.

* ``autoencoder``: ``D((1 - b) E(x) + b z_mean)`` at the norm of ``E(x)`` (methods.md 2.4).
* ``autoencoder-ap``: ``D((1 - b) E(x) + b E'(x))`` with ``E'`` fine-tuned to change identity and keep attributes (3).
* ``gan``: ``D(C([L(x), (1 - m) x], t))`` with a target identity ``t`` per track (4).
* ``replace``: a donor face per track, from ``--donors`` photos or sampled from the decoder.

Faces bigger than the square come back upsampled from 64 px: the face is new but soft (see docs/methods.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deidcli.generative import face_warp
from deidcli.methods import naive, strands

BAND_BLUR = 24.0  # sigma at a 112 px region, for the hair and background around the new face
MIN_SPREAD, MAX_SPREAD = 0.6, 1.5  # limits on the colour-spread match, so a flat face is not blown up


def match_colours(new: torch.Tensor, old: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``new`` with each channel's mean and spread inside ``mask: (1, 1, S, S)`` set to those of ``old``;
    ``(B, 3, S, S)``, clipped to ``[0, 1]``."""
    w = mask / mask.sum()
    mn, mo = (new * w).sum((2, 3), keepdim=True), (old * w).sum((2, 3), keepdim=True)
    sn = ((new - mn) ** 2 * w).sum((2, 3), keepdim=True).sqrt()
    so = ((old - mo) ** 2 * w).sum((2, 3), keepdim=True).sqrt()
    ratio = (so / sn.clamp_min(1e-4)).clamp(MIN_SPREAD, MAX_SPREAD)
    return ((new - mn) * ratio + mo).clamp(0, 1)


def regenerate(crops: torch.Tensor, inner: float, make: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
               landmarks: torch.Tensor | None = None, band_blur: float = BAND_BLUR, hair: bool = True) -> torch.Tensor:
    """Apply ``make(faces (B, 3, 64, 64), square_landmarks) -> (B, 3, 64, 64)`` to the face of every region crop
    ``(B, 3, H, W)``.

    ``inner`` is the share of the crop the detector's box takes; ``landmarks: (B, 5, 2)`` in crop pixels, when the
    detector gave them; ``make`` gets them in the square's ``[0, 1]`` (or ``None``), so methods that need
    landmarks do not look for them again. Returns the crops with the face replaced and the band around it blurred
    (with strands where ``hair``), in ``[0, 1]``.
    """
    b, _, h, w = crops.shape
    x = crops.float()
    t = face_warp.crop_transforms(h, w, inner, b, landmarks, x.device)
    faces = face_warp.to_canonical(x, t)
    given = None if landmarks is None else face_warp.to_square_points(landmarks, t)
    mask = face_warp.face_mask(faces.shape[-1], x.device)
    new = match_colours(make(faces, given).float(), faces, mask)
    back = face_warp.from_canonical(torch.cat([new, mask.expand(b, 1, -1, -1)], 1), t, h, w)
    m = back[:, 3:].clamp(0, 1)
    band = naive.fast_gaussian_blur(x, band_blur * h / 112)
    if hair:
        centres = t[:, :, 2] + t[:, :, :2] @ torch.tensor(face_warp.FACE_CENTRE, device=x.device)
        band = strands.hair_band(x, band, centres)
    return (m * back[:, :3] + (1 - m) * band).clamp(0, 1).to(crops.dtype)


def _unit(s: float) -> float:
    return float(min(max(s, 0.0), 1.0))


def autoencoder_faces(model, faces: torch.Tensor, beta: float) -> torch.Tensor:
    """``D((1 - beta) E(x) + beta z_mean)`` of canonical faces ``(B, 3, 64, 64)``, rescaled to ``|E(x)|``: 0 is the
    plain reconstruction, 1 the same mean face for everyone.

    The rescaling keeps the code where the decoder draws faces: the mean code itself is short (|z_mean| 1 against
    4 to 10 for a face), and the straight blend decoded to a blob no detector calls a face (0% found at 1)."""
    with torch.inference_mode():
        z = own = model.encoder(faces)
        if beta > 0:
            z = (1 - beta) * own + beta * model.mean_code
            z = z * own.norm(dim=1, keepdim=True) / z.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return model.decoder(z)


def ap_faces(model, faces: torch.Tensor, beta: float) -> torch.Tensor:
    """``D((1 - beta) E(x) + beta E'(x))``: 0 is the base autoencoder's reconstruction, 1 the fine-tuned encoder's."""
    with torch.inference_mode():
        return model.decoder((1 - beta) * model.encoder(faces) + beta * model.encoder_ap(faces))


def autoencoder_method(x, s, scale, g, color, inner, track, model, landmarks=None):
    return regenerate(x, inner, lambda faces, _: autoencoder_faces(model, faces, _unit(s)), landmarks)


def autoencoder_ap_method(x, s, scale, g, color, inner, track, model, landmarks=None):
    return regenerate(x, inner, lambda faces, _: ap_faces(model, faces, _unit(s)), landmarks)


REPLACE_POLICY = (
    "one donor per track, chosen at first sight among the 8 donors of the nearest pose, seeded by --seed and the "
    "track id (the same person gets the same donor in one run: a pseudonym within this output, unlinkable across "
    "outputs made with other seeds); an untracked face draws its own"
)
DONOR_POOL = 256  # synthetic donors sampled once per run; the one with the nearest pose is chosen per track
NEAREST_POSES = 8  # a track's donor is drawn from this many donors of the closest pose


def _pose(landmarks: torch.Tensor) -> torch.Tensor:
    """Landmark layouts ``(B, 5, 2)`` centred and scaled to unit size, flattened ``(B, 10)``: pose and expression,
    not position or size."""
    c = landmarks - landmarks.mean(1, keepdim=True)
    return (c / c.norm(dim=(1, 2), keepdim=True).clamp_min(1e-6)).flatten(1)


GAN_POLICY = (
    "one target identity per track, t != id(x): drawn at first sight, seeded by --seed and the track id, among the "
    "half of the model's pseudo-identities whose codes lie farthest from the face's own code; the same person is one "
    "consistent other (synthetic) person along the video; an untracked face draws its own"
)


def gan_faces(model, faces: torch.Tensor, targets: torch.Tensor, beta: float = 1.0,
              landmarks: torch.Tensor | None = None) -> torch.Tensor:
    """``D((1 - beta) E(x) + beta C([L(x), (1 - m) x, m], t))`` of canonical faces ``(B, 3, 64, 64)`` for target
    codes ``targets: (B, 100)``; ``L(x)`` from ``landmarks`` in the square where given
    (:func:`~deidcli.generative.face_warp.square_landmarks`)."""
    from deidcli.generative.training import gan_planes

    lm = face_warp.square_landmarks(faces, model.detector, landmarks)
    with torch.inference_mode():
        z = model.targeted(gan_planes(faces, lm), targets)
        if beta < 1:
            z = (1 - beta) * model.encoder(faces) + beta * z
        return model.decoder(z)


def choose_targets(model, faces: torch.Tensor, g: torch.Generator | None, track) -> torch.Tensor:
    """A target code ``(B, 100)`` per face: far from the face's own code, kept for the track."""
    if track is not None and ("target", track) in model.track_target:  # chosen at first sight: nothing to encode
        return model.targets[model.track_target[("target", track)]].expand(len(faces), -1)
    with torch.inference_mode():
        own = model.encoder(faces)
    d = torch.cdist(own, model.targets)
    far = d.topk(max(1, len(model.targets) // 2), dim=1).indices  # the farther half
    pick = torch.randint(far.shape[1], (len(faces),), generator=g) if g is not None else torch.zeros(len(faces), dtype=torch.long)
    index = far[torch.arange(len(faces)), pick.to(far.device)]
    if track is not None:
        index[:] = model.track_target.setdefault(("target", track), int(index[0]))
    return model.targets[index]


def gan_method(x, s, scale, g, color, inner, track, model, landmarks=None):
    def make(faces, lm):
        return gan_faces(model, faces, choose_targets(model, faces, g, track), _unit(s), lm)

    return regenerate(x, inner, make, landmarks)


@dataclass
class DonorBank:
    """Faces to paste in, framed as the decoder draws them, with their landmarks: ``faces (N, 3, 64, 64)``,
    ``landmarks (N, 5, 2)`` in ``[0, 1]``; which track got which donor."""

    faces: torch.Tensor
    landmarks: torch.Tensor
    source: str
    detector: object
    track_target: dict = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path | None, device: torch.device | str = "cpu") -> "DonorBank":
        from deidcli.detection import build_detector

        detector = build_detector("centerface")
        if folder is None:
            from deidcli.generative.synthetic import load_decoder, sample_codes

            with torch.no_grad():
                faces = load_decoder()(sample_codes(DONOR_POOL, torch.Generator().manual_seed(0)))
            source = f"{DONOR_POOL} synthetic faces sampled from the DCGAN (gan-face-generate, DigiFace-1M)"
        else:
            from deidcli.generative.training import real_faces

            faces = real_faces(Path(folder), detector)
            source = f"{len(faces)} donor faces from {folder}"
        lm = face_warp.square_landmarks(faces, detector)
        return cls(faces.to(device), lm.to(device), source, detector)

    def choose(self, targets: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """A donor index ``(B,)`` for each target landmark layout ``(B, 5, 2)``: one of the nearest poses."""
        d = torch.cdist(_pose(targets), _pose(self.landmarks))
        k = min(NEAREST_POSES, len(self.faces))
        nearest = d.topk(k, largest=False).indices
        pick = torch.randint(k, (len(targets),), generator=g) if g is not None else torch.zeros(len(targets), dtype=torch.long)
        return nearest[torch.arange(len(targets)), pick.to(nearest.device)]

    def aligned(self, index: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Donors ``index`` warped so their landmarks land on ``targets`` (in the square): ``(B, 3, 64, 64)``."""
        size = self.faces.shape[-1]
        t = face_warp.landmark_transform(targets * size, self.landmarks[index])
        return face_warp.from_canonical(self.faces[index], t, size, size)


def replace_method(x, s, scale, g, color, inner, track, model: DonorBank, landmarks=None):
    opacity = _unit(s)

    def make(faces, lm):
        targets = face_warp.square_landmarks(faces, model.detector, lm)
        index = model.choose(targets, g)
        if track is not None:  # first sight decides: the person keeps one donor for the whole track
            index[:] = model.track_target.setdefault(("donor", track), int(index[0]))
        return opacity * model.aligned(index, targets) + (1 - opacity) * faces

    return regenerate(x, inner, make, landmarks)
