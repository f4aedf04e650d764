"""``deid train``: the encoders of the generative methods, trained for the frozen DCGAN decoder.

* ``autoencoder`` (methods.md 2.4): an encoder ``E`` with ``D(E(x)) ~ x`` for the frozen decoder ``D``. Trained on
  synthetic faces ``x = D(z)``, where the code is known, so ``E`` learns both the code (``|E(x) - z|^2``) and the
  picture (``|D(E(x)) - x|_1``); half of every batch is also jittered in colour and framing and resampled through a
  low resolution, so real faces cut out of video land near the face they show. A ``--faces`` folder adds real crops
  with the picture loss alone.
* ``gan`` (methods.md 4): :func:`train_gan`.
* ``autoencoder-ap`` (methods.md 3, Nousi et al.): a copy ``E'`` of that encoder fine-tuned with the decoder frozen,
  ``L = L_id + L_att + l_z |E'(x) - E(x)|^2 + L_div``: ``L_id = relu(cos(f(D(E'(x))), f(x)) - tau)`` pushes FaceNet's
  embedding of the output away from the input's; ``L_att`` keeps the attributes deid measures, skin tone (the mean
  colour of the face), the face's layout at 8 x 8 pixels (where eyes, mouth and jaw sit, below any recognizer's
  resolution) and its five landmarks (pose and mouth, as deid evaluate measures them) read by a small landmark
  network learned from CenterFace's landmarks on synthetic faces (:func:`train_landmark_net`: CenterFace itself has
  no gradient); ``L_div`` keeps the outputs of a batch apart, so not everyone becomes one person.

Every loop is deterministic for a seed and reports ``on_step(step, total, losses)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from deidcli.generative import augment, synthetic
from deidcli.generative.model import GenerativeModel
from deidcli.generative.nets import Encoder

OnStep = Callable[[int, int, dict[str, float]], None]


def real_faces(folder: Path, detector=None) -> torch.Tensor:
    """Every face a detector finds in ``folder``'s photos, framed as the decoder draws faces: ``(N, 3, 64, 64)``."""
    from deidcli.detection import build_detector
    from deidcli.generative.face_warp import cut_faces
    from deidcli.photos import load_rgb, photo_files

    detector = detector or build_detector("centerface")
    crops = []
    for _, path in photo_files(folder):
        img = load_rgb(path)
        found = detector.detect(img, 1.0)
        for box in found.xyxy:
            if box[3] - box[1] >= 16:
                crops.append(cut_faces(img, box[None]))
    if not crops:
        raise ValueError(f"{folder}: no face of 16 px or more found to train on")
    return torch.cat(crops)


def _real_batches(faces: torch.Tensor, batch: int, g: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield faces[torch.randint(len(faces), (batch,), generator=g)]


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN on AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def mixed_precision() -> torch.autocast:
    """bfloat16 for the networks' products where the CPU computes it natively: a training step takes 0.55-0.6 of
    its float32 time there; elsewhere float32, which bfloat16 would slow down."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bfloat16())


def decoded_pool(decoder, n: int, g: torch.Generator, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` codes ``(n, 100)`` and the faces they decode to ``(n, 3, 64, 64)``, decoded once."""
    z = synthetic.sample_codes(n, g)
    with torch.no_grad(), mixed_precision():
        return z, torch.cat([decoder(z[i : i + chunk]).float() for i in range(0, n, chunk)])


def fit_codes(encoder: Encoder, z: torch.Tensor, x: torch.Tensor, steps: int, batch: int, lr: float,
              g: torch.Generator, on_step: OnStep | None = None, total: int | None = None) -> None:
    """Teach ``encoder`` the known codes ``z`` of the renders ``x``, each seen as a video crop (jittered in colour
    and framing, resampled through a lower resolution): a regression in code space, no gradient through the decoder,
    so a step costs a tenth of a picture-loss step."""
    opt = torch.optim.Adam(encoder.parameters(), lr=lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for step in range(steps):
        i = torch.randint(len(x), (batch,), generator=g)
        with torch.no_grad():
            seen = augment.degrade(augment.colour_jitter(augment.jitter_geometry(x[i], g, 0.03, 0.04, 4.0), g), g)
        with mixed_precision():
            loss = F.mse_loss(encoder(seen).float(), z[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if on_step:
            on_step(step + 1, total or steps, {"latent": loss.item()})


def train_autoencoder(steps: int = 1000, batch: int = 48, seed: int = 0, faces: torch.Tensor | None = None,
                      lr: float = 2e-3, on_step: OnStep | None = None, code_steps: int = 0,
                      pool: int = 2048) -> GenerativeModel:
    """The encoder of the plain autoencoder, with the mean of its codes over the training faces: ``code_steps`` of
    :func:`fit_codes` on ``pool`` renders first, then ``steps`` with the picture loss through the decoder."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    decoder = synthetic.load_decoder()
    encoder = Encoder()
    start = time.monotonic()
    total = code_steps + steps
    if code_steps:
        pool_z, pool_x = decoded_pool(decoder, pool, g)
        fit_codes(encoder, pool_z, pool_x, code_steps, 64, lr, g, on_step, total)
        del pool_x
    opt = torch.optim.Adam(encoder.parameters(), lr=lr / 4 if code_steps else lr, betas=(0.5, 0.999))
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
             if steps and not code_steps else None)
    real = _real_batches(faces, batch // 4, g) if faces is not None and len(faces) else None
    for step in range(steps):
        z = synthetic.sample_codes(batch, g)
        with torch.no_grad(), mixed_precision():
            x = decoder(z).float()
        half = batch // 2
        # first half: the render itself, only degraded (the code is known); second: jittered, picture loss only
        seen = x.clone()
        jittered = augment.colour_jitter(augment.jitter_geometry(x[half:], g), g)
        seen[half:] = jittered
        target = torch.cat([x[:half], jittered])
        if real is not None:
            r = next(real)
            seen, target = torch.cat([seen, r]), torch.cat([target, r])
        seen = augment.degrade(seen, g)
        with mixed_precision():
            code = encoder(seen).float()
            picture = F.l1_loss(decoder(code).float(), target)
        latent = F.mse_loss(code[:half], z[:half])
        loss = picture + 0.05 * latent
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if on_step:
            on_step(code_steps + step + 1, total, {"picture": picture.item(), "latent": latent.item()})
    encoder.eval().requires_grad_(False)
    with torch.no_grad():
        mean_code = torch.cat([encoder(decoder(synthetic.sample_codes(256, g))) for _ in range(4)]).mean(0)
    info = {
        "precision": "bfloat16" if native_bfloat16() else "float32",
        "kind": "autoencoder", "steps": total, "code_steps": code_steps, "picture_steps": steps, "batch": batch,
        "seed": seed,
        "seconds": round(time.monotonic() - start, 1),
        "data": "synthetic faces sampled from the DCGAN" + (f" + {len(faces)} real face crops" if real else ""),
        "decoder": synthetic.PACKAGE, "licence": synthetic.DATA_LICENCE,
    }
    return GenerativeModel("autoencoder", decoder, encoder, mean_code, info=info)


def face_colour(x: torch.Tensor) -> torch.Tensor:
    """Skin tone: the mean colour ``(B, 3)`` of the face ellipse of canonical faces ``(B, 3, 64, 64)``."""
    from deidcli.generative.face_warp import face_mask

    m = face_mask(x.shape[-1], x.device)
    return (x * m).sum((2, 3)) / m.sum()


def face_layout(x: torch.Tensor) -> torch.Tensor:
    """Pose and expression at a resolution no recognizer works at: the face's luminance at 8 x 8, normalised
    for brightness and contrast, ``(B, 64)``."""
    y = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 8).flatten(1)
    return (y - y.mean(1, keepdim=True)) / y.std(1, keepdim=True).clamp_min(1e-3)


ID_SIZE = 112  # FaceNet reads the 64 px faces at 112, not its 160: a third of the cost, the same gradient's direction


def _identity(facenet, x: torch.Tensor) -> torch.Tensor:
    """FaceNet's unit embeddings ``(B, 512)`` of faces ``(B, 3, 64, 64)``, differentiable."""
    big = F.interpolate(x, size=(ID_SIZE, ID_SIZE), mode="bilinear", align_corners=False)
    return facenet.net((big * 255 - 127.5) / 128)


GAN_POOL = 1024  # synthetic training faces with their landmarks, found once


def landmark_pool(decoder, g: torch.Generator, pool: int = GAN_POOL) -> tuple[torch.Tensor, ...]:
    """``pool`` synthetic faces with their codes and CenterFace's landmarks ``(N, 5, 2)`` in ``[0, 1]``, those where
    it found none left out: ``(z, x, landmarks)``."""
    from deidcli.detection import build_detector
    from deidcli.generative.face_warp import find_landmarks

    z, x = decoded_pool(decoder, pool, g)
    lm = find_landmarks(x, build_detector("centerface"))
    ok = torch.isfinite(lm).all(2).all(1)
    return z[ok], x[ok], lm[ok]


def train_landmark_net(faces: torch.Tensor, landmarks: torch.Tensor, g: torch.Generator, steps: int = 400,
                       batch: int = 64, lr: float = 2e-3) -> Encoder:
    """A differentiable stand-in for the face detector's landmarks: 64 px faces ``(B, 3, 64, 64)`` -> ``(B, 10)``,
    the five points in ``[0, 1]`` of the square, learned from ``landmarks (N, 5, 2)`` on ``faces`` seen through
    the colour jitter and resolution loss of video crops."""
    net = Encoder(3, width=16, z_dim=10)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    target = landmarks.flatten(1)
    for _ in range(steps):
        i = torch.randint(len(faces), (batch,), generator=g)
        with torch.no_grad():
            seen = augment.degrade(augment.colour_jitter(faces[i], g, 0.5), g, smallest=24)
        with mixed_precision():
            loss = F.l1_loss(net(seen).float() + 0.5, target[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval().requires_grad_(False)
    return net


POSE_WEIGHT = 20.0  # landmark L1 in units of the square: 0.01 (0.6 px) weighs 0.2, as much as the layout term


def train_attribute_preserving(base: GenerativeModel, steps: int = 300, batch: int = 12, seed: int = 0,
                               faces: torch.Tensor | None = None, lr: float = 5e-4, tau: float = 0.2,
                               pool: int = GAN_POOL, landmark_steps: int = 400,
                               on_step: OnStep | None = None) -> GenerativeModel:
    """``base`` with ``encoder_ap``: its encoder fine-tuned to change identity and keep attributes; the decoder and
    the base encoder stay bit-identical."""
    from deidcli.recognition.recognizer import FaceNetRecognizer

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    facenet = FaceNetRecognizer()
    decoder, base_encoder = base.decoder, base.encoder.eval().requires_grad_(False)
    ap = Encoder()
    ap.load_state_dict(base_encoder.state_dict())
    ap.train().requires_grad_(True)
    opt = torch.optim.Adam(ap.parameters(), lr=lr, betas=(0.5, 0.999))
    real = _real_batches(faces, batch // 4, g) if faces is not None and len(faces) else None
    start = time.monotonic()
    _, pool_x, pool_lm = landmark_pool(decoder, g, pool)
    marks = train_landmark_net(pool_x, pool_lm, g, landmark_steps)
    for step in range(steps):
        with torch.no_grad(), mixed_precision():
            x = decoder(synthetic.sample_codes(batch, g)).float()
            x = augment.degrade(augment.colour_jitter(augment.jitter_geometry(x, g), g, 0.5), g, smallest=24)
            if real is not None:
                x = torch.cat([x, next(real)])
            code = base_encoder(x).float()
            e_in = _identity(facenet, x).float()
            colour_in, layout_in = face_colour(x), face_layout(decoder(code).float())
            marks_in = marks(x).float()
        with mixed_precision():
            new_code = ap(x).float()
            out = decoder(new_code).float()
            e_out = _identity(facenet, out).float()
            marks_out = marks(out).float()
        identity = F.relu((e_out * e_in).sum(1) - tau).mean()
        posed = F.l1_loss(marks_out, marks_in) * POSE_WEIGHT
        attributes = F.l1_loss(face_colour(out), colour_in) * 10 + F.l1_loss(face_layout(out), layout_in) * 0.5 + posed
        stay = F.mse_loss(new_code, code)
        spread = torch.pdist(e_out).mean()
        diversity = F.relu(0.8 - spread)
        loss = identity * 4 + attributes + 0.02 * stay + diversity
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step:
            on_step(step + 1, steps, {"identity": identity.item(), "attributes": attributes.item(),
                                      "pose": posed.item(), "stay": stay.item(), "spread": spread.item()})
    ap.eval().requires_grad_(False)
    info = dict(base.info)
    info.update({
        "kind": "autoencoder-ap", "ap_steps": steps, "ap_batch": batch, "ap_seed": seed, "tau": tau,
        "ap_seconds": round(time.monotonic() - start, 1), "identity_network": f"FaceNet ({facenet.source})",
        "attributes": "skin tone (mean face colour), face layout at 8x8, five landmarks (pose, mouth) by a landmark "
                      f"net learned from CenterFace on {len(pool_x)} synthetic faces",
    })
    info["seconds"] = round(info.get("seconds", 0) + info["ap_seconds"], 1)
    return GenerativeModel("autoencoder-ap", decoder, base_encoder, base.mean_code, encoder_ap=ap, info=info)


# The default models: what the first run that needs one, `deid train` and `make models` train (seed 0, synthetic
# faces only). autoencoder and gan train in under two minutes on two cores, base included; autoencoder-ap keeps its
# 300 steps (about three minutes), as fewer did not protect every rebuild (docs/methods.md has the figures).
RECIPES: dict[str, dict] = {
    "autoencoder": {"code_steps": 300, "steps": 40, "pool": 1024},
    "autoencoder-ap": {"steps": 300, "pool": 1024, "landmark_steps": 400},
    "gan": {"steps": 300, "batch": 16, "pool": 384, "rebuild_in_codes": True},
}


class Progress(Protocol):
    """What shows training's progress: :class:`deidcli.progress.FrameProgress` or anything with its two hooks."""

    def start(self, total: int | None, description: str) -> None: ...

    def advance(self, n: int) -> None: ...


def stepper(progress: Progress | None, label: str) -> OnStep | None:
    """An ``on_step`` that shows ``label``'s steps on ``progress``."""
    if progress is None:
        return None

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 1:
            progress.start(total, label)
        progress.advance(1)

    return on_step


def _base(seed: int, progress: Progress | None) -> GenerativeModel:
    """The autoencoder the other kinds start from: the cached default (trained into the cache first if absent) or,
    for another seed, one trained now."""
    from deidcli.generative.model import default_model_path, ensure_default

    if seed != 0:
        return train_autoencoder(seed=seed, on_step=stepper(progress, "train autoencoder"), **RECIPES["autoencoder"])
    return ensure_default("autoencoder", progress) or GenerativeModel.load(default_model_path("autoencoder"),
                                                                            "autoencoder")


def train(kind: str, faces: torch.Tensor | None = None, steps: int | None = None, seed: int = 0,
          progress: Progress | None = None) -> GenerativeModel:
    """Train the model of ``kind`` by its :data:`RECIPES` entry (``steps`` overrides its steps); ``gan`` and
    ``autoencoder-ap`` start from the default autoencoder, trained first if the cache does not have it."""
    if kind not in RECIPES:
        raise ValueError(f"unknown model kind {kind!r}")
    recipe = dict(RECIPES[kind], **({"steps": steps} if steps else {}))
    on_step = stepper(progress, f"train {kind}")
    if kind == "autoencoder":
        model = train_autoencoder(seed=seed, faces=faces, on_step=on_step, **recipe)
    elif kind == "autoencoder-ap":
        model = train_attribute_preserving(_base(seed, progress), seed=seed, faces=faces, on_step=on_step, **recipe)
    else:
        model = train_gan(_base(seed, progress), seed=seed, on_step=on_step, **recipe)
    if not steps and faces is None and seed == 0:
        model.info["recipe"] = default_recipe(kind)
    return model


def default_recipe(kind: str) -> dict:
    """What a default model of ``kind`` is trained by, its base's recipe included: a cached model with another one
    (from an older deid) is trained again."""
    return {"kind": kind, **RECIPES[kind], **({"base": RECIPES["autoencoder"]} if kind != "autoencoder" else {})}


HEAT_SIGMA = 2.5  # pixels of the 64 px square


def landmark_maps(landmarks: torch.Tensor, size: int = synthetic.SIZE) -> torch.Tensor:
    """``L(x)``: a Gaussian heat map per landmark, ``(B, 5, size, size)``, from ``(B, 5, 2)`` in ``[0, 1]``."""
    u = (torch.arange(size, dtype=torch.float32, device=landmarks.device) + 0.5) / size
    dx = u[None, None, None, :] - landmarks[..., 0, None, None]
    dy = u[None, None, :, None] - landmarks[..., 1, None, None]
    return torch.exp(-(dx ** 2 + dy ** 2) * size ** 2 / (2 * HEAT_SIGMA ** 2))


def gan_planes(faces: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """The generator's input ``[L(x), (1 - m) x, m]``: ``(B, 9, 64, 64)``; the face itself is masked out."""
    from deidcli.generative.face_warp import face_mask

    m = face_mask(faces.shape[-1], faces.device).expand(len(faces), 1, -1, -1)
    return torch.cat([landmark_maps(landmarks, faces.shape[-1]), (1 - m) * faces, m], 1)


def train_gan(base: GenerativeModel, steps: int = 1200, batch: int = 24, seed: int = 0, lr: float = 5e-4,
              targets: int = 512, pool: int = GAN_POOL, on_step: OnStep | None = None,
              rebuild_in_codes: bool = False) -> GenerativeModel:
    """``base`` with the conditioned encoder of ``gan`` and a pool of ``targets`` pseudo-identity codes.

    Trained on synthetic faces ``x = D(z)`` with their landmarks: given its own code (``t = z``) the generator must
    draw ``x`` again; given another's (``t = z'``), the face it draws must fit ``x``'s surroundings (the composite
    ``m D(C(.)) + (1 - m) x`` has no seam) and keep ``x``'s layout at 8 x 8 (pose), and a discriminator must not tell
    the composite from a real render.
    """
    from deidcli.generative.face_warp import face_mask
    from deidcli.generative.nets import Critic, TargetedEncoder

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    decoder = base.decoder
    start = time.monotonic()
    pool_z, pool_x, pool_lm = landmark_pool(decoder, g, pool)
    gen = TargetedEncoder(9)
    critic = Critic()
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr / 2, betas=(0.5, 0.999))
    m = face_mask(synthetic.SIZE)
    for step in range(steps):
        i = torch.randint(len(pool_x), (batch,), generator=g)
        x, z, lm = pool_x[i], pool_z[i], pool_lm[i]
        other = pool_z[torch.randint(len(pool_x), (batch,), generator=g)]
        planes = gan_planes(x, lm)
        with mixed_precision():
            own_code = gen(planes, z).float()
            z_swapped = gen(planes, other).float()
            swapped = decoder(z_swapped).float()
        composite = m * swapped + (1 - m) * x
        # discriminator: renders are real, composites with another identity are not
        with mixed_precision():
            d_loss = F.relu(1 - critic(x).float()).mean() + F.relu(1 + critic(composite.detach()).float()).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # given its own code, the face again: compared in code space (no decoder pass) or as a picture
        with mixed_precision():
            rebuild = (F.mse_loss(own_code, z) * 0.2 if rebuild_in_codes
                       else F.l1_loss(decoder(own_code).float(), x))
            adversarial = F.softplus(-critic(composite).float()).mean() * 0.01
        context = F.l1_loss((1 - m) * swapped, (1 - m) * x) * 2
        layout = F.l1_loss(face_layout(swapped), face_layout(x)) * 0.2
        # codes stay where the decoder was trained (|z|^2 / 100 of N(0, I) is 1): off it, it draws noise
        prior = (z_swapped.pow(2).mean(1) - 1).pow(2).mean() * 0.1
        loss = rebuild + context + layout + adversarial + prior
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if on_step:
            on_step(step + 1, steps, {"rebuild": rebuild.item(), "context": context.item(), "layout": layout.item(),
                                      "adversarial": adversarial.item(), "critic": d_loss.item(),
                                      "prior": prior.item()})
    gen.eval().requires_grad_(False)
    info = dict(base.info)
    info.update({
        "kind": "gan", "gan_steps": steps, "gan_batch": batch, "gan_seed": seed, "gan_targets": targets,
        "gan_seconds": round(time.monotonic() - start, 1),
        "gan_data": f"{len(pool_x)} synthetic faces from the DCGAN with CenterFace landmarks",
    })
    info["seconds"] = round(info.get("seconds", 0) + info["gan_seconds"], 1)
    pool = synthetic.sample_codes(targets, torch.Generator().manual_seed(seed + 1))
    return GenerativeModel("gan", decoder, base.encoder, base.mean_code, base.encoder_ap, gen, pool, info)
