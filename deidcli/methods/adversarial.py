"""Adversarial de-identification (methods.md sections 5-7): small changes that make machines fail, not people.

Plain functions on batched crops ``x: (B, 3, H, W)`` in ``[0, 1]``. Every attack is the same iteration, the
lecture's I-FGVM, ``x <- clip01(x - alpha * norm(grad J(x)))``, run on the whole batch with a per-crop active mask:
a crop whose goal is met stops moving (early stop), and an optional L-infinity budget ``eps`` bounds the change.
The goals differ by the loss ``J``:

* :func:`ifgvm_embedding`: move a face's embedding away from its own (dodging) or towards a target person's;
* :func:`kanon_loss`: the k-anonymity attack, true identity pushed to a balanced rank 2..K+1 with near-uniform
  scores over the top K+1, so neither rank 1 nor the ranking gives the person away;
* :func:`dedetect`: lower the face detector's scores on the face until it no longer fires.

Models are used in eval mode with frozen parameters, so samples in a batch never interact (BatchNorm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) -> (B,) loss to minimise
DoneFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) -> (B,) bool: goal met


@dataclass
class AttackResult:
    x: torch.Tensor  # (B, 3, H, W) the attacked crops
    steps: torch.Tensor  # (B,) iterations each crop took
    success: torch.Tensor  # (B,) bool: goal met


def iterate(
    x: torch.Tensor,
    loss_fn: LossFn,
    done_fn: DoneFn | None = None,
    steps: int = 100,
    alpha: float = 1 / 255,
    norm: str = "calibrated",
    eps: float | None = None,
    region: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
) -> AttackResult:
    """I-FGVM on a batch: ``x_{i+1} = clip01(x_i - alpha * norm(grad loss))`` until ``done_fn`` or ``steps``.

    ``norm``: ``"none"`` (the lecture's raw gradient), ``"calibrated"`` (scaled once per crop so the first step
    changes pixels by ``alpha`` RMS: FGVM's direction and relative magnitudes kept, alpha meaningful), ``"l2"``
    (every step rescaled to RMS ``alpha``) or ``"sign"`` (I-FGSM). ``eps`` bounds ``|x' - x|`` per pixel;
    ``region: (B, 1, H, W)`` limits the change to a mask. ``start``: resume from an earlier result (the budget
    still counts from ``x``).
    """
    x0 = x.detach().float()
    adv = x0.clone() if start is None else start.detach().float().clone()
    b = len(x0)
    active = torch.ones(b, dtype=torch.bool, device=x0.device)
    taken = torch.zeros(b, dtype=torch.long, device=x0.device)
    scale = None
    if done_fn is not None:
        with torch.no_grad():
            active &= ~done_fn(adv)
    for _ in range(steps):
        if not active.any() or alpha == 0:
            break
        adv.requires_grad_(True)
        loss = loss_fn(adv)
        (grad,) = torch.autograd.grad(loss.sum(), adv)
        adv = adv.detach()
        rms = grad.pow(2).flatten(1).mean(1).sqrt().clamp_min(1e-20).view(-1, 1, 1, 1)
        if norm == "sign":
            step = grad.sign()
        elif norm == "l2":
            step = grad / rms
        elif norm == "calibrated":
            if scale is None:
                scale = 1 / rms
            step = grad * scale
        elif norm == "none":
            step = grad
        else:
            raise ValueError(f"unknown norm {norm!r}")
        if region is not None:
            step = step * region
        moved = adv - alpha * step
        if eps is not None:
            moved = torch.max(torch.min(moved, x0 + eps), x0 - eps)
        moved = moved.clamp(0, 1)
        adv = torch.where(active.view(-1, 1, 1, 1), moved, adv)
        taken += active.long()
        if done_fn is not None:
            with torch.no_grad():
                active &= ~done_fn(adv)
    with torch.no_grad():
        success = done_fn(adv) if done_fn is not None else torch.ones(b, dtype=torch.bool, device=x0.device)
    return AttackResult(adv.to(x.dtype), taken, success)


def escalate(
    x: torch.Tensor,
    attack: Callable[[torch.Tensor, torch.Tensor, float], AttackResult],
    budgets: tuple[float, ...],
) -> tuple[AttackResult, torch.Tensor]:
    """The smallest of ``budgets`` (L-infinity, increasing) that each crop needs: every crop is attacked within the
    first; those that fail go on, from where they stopped, within the next, and so on. The lecture's "minimum
    required noise" per face rather than one budget sized for the hardest.

    ``attack(idx, start, eps)`` attacks crops ``x[idx]`` from ``start``. Returns the combined result and the budget
    each crop ended with ``(B,)``.
    """
    adv_x = x.detach().clone()
    steps = torch.zeros(len(x), dtype=torch.long, device=x.device)
    success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    used = torch.zeros(len(x), device=x.device)
    for eps in budgets:
        idx = torch.nonzero(~success)[:, 0]
        if not len(idx):
            break
        r = attack(idx, adv_x[idx], eps)
        adv_x[idx], success[idx], used[idx] = r.x.to(adv_x.dtype), r.success, eps
        steps[idx] += r.steps
    return AttackResult(adv_x, steps, success), used


# --- recognizers: closed-set scores from embeddings ------------------------------------------------------------


def class_logits(embed: Callable[[torch.Tensor], torch.Tensor], templates: torch.Tensor, scale: float = 10.0
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A closed-set classifier from an embedding network: logits ``scale * cos(e(x), template_j)`` for each person
    ``j`` of ``templates: (C, D)`` (mean embeddings of their gallery photos)."""
    t = F.normalize(templates, dim=1)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return scale * F.normalize(embed(x), dim=1) @ t.T

    return logits


def ifgvm_classes(
    x: torch.Tensor,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    true: torch.Tensor,
    target: torch.Tensor | None = None,
    kappa: float = 0.5,
    **kw,
) -> AttackResult:
    """Closed-set I-FGVM. Targeted (``target`` given): minimise ``-log p_t``, stop when ``argmax = t`` and
    ``p_t >= kappa``. Untargeted (dodging): minimise ``log p_y`` of the true person, stop when ``argmax != y`` and
    ``p_y <= 1 - kappa``."""
    if target is not None:
        def loss(a):
            return F.cross_entropy(logits_fn(a), target, reduction="none")

        def done(a):
            p = logits_fn(a).softmax(1)
            return (p.argmax(1) == target) & (p.gather(1, target[:, None])[:, 0] >= kappa)
    else:
        def loss(a):
            return -F.cross_entropy(logits_fn(a), true, reduction="none")

        def done(a):
            p = logits_fn(a).softmax(1)
            return (p.argmax(1) != true) & (p.gather(1, true[:, None])[:, 0] <= 1 - kappa)
    return iterate(x, loss, done, **kw)


def ifgvm_embedding(
    x: torch.Tensor,
    embed: Callable[[torch.Tensor], torch.Tensor],
    target_embedding: torch.Tensor | None = None,
    min_distance: float = 1.0,
    **kw,
) -> AttackResult:
    """Open-set I-FGVM on an embedding network (no gallery needed; what a video frame has). Dodging: lower
    ``cos(e(x'), e(x))`` until the embedding is ``min_distance`` (L2, unit vectors) away from the original.
    Impersonation: raise ``cos(e(x'), target)`` until it is within ``min_distance`` of the target."""
    with torch.no_grad():
        own = F.normalize(embed(x.float()), dim=1)
    goal = own if target_embedding is None else F.normalize(target_embedding, dim=1)
    sign = 1.0 if target_embedding is None else -1.0

    def loss(a):
        return sign * (F.normalize(embed(a), dim=1) * goal).sum(1)

    def done(a):
        a = (a * 255).round() / 255  # judged as it will be stored (8 bits), or rounding undoes the last steps
        d = (F.normalize(embed(a), dim=1) - goal).norm(dim=1)
        return d >= min_distance if target_embedding is None else d <= min_distance

    return iterate(x, loss, done, **kw)


# --- k-anonymity attack (K-A3) ---------------------------------------------------------------------------------


def balanced_ranks(n: int, k_positions: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Target rank ``2 + (pi(i) mod K)`` for each of ``n`` samples: over the set, the true identity's rank is
    uniform over positions 2..K+1 (each used n/K +- 1 times), never 1."""
    perm = torch.randperm(n, generator=generator)
    return 2 + perm % k_positions


def kanon_loss(logits: torch.Tensor, true: torch.Tensor, rank: torch.Tensor, k_positions: int, margin: float = 0.1,
               uniform_weight: float = 1.0) -> torch.Tensor:
    """Per-sample K-A3 loss (methods.md section 6, PROP form) on ``logits: (B, C)``.

    The ``rank - 1`` strongest other classes (decoys) must score above the true class by ``margin``; every other
    class of the top ``K + 1`` must score below it; and the renormalised probabilities over that top set are pushed
    towards uniform (KL), so the scores do not betray the structure either.
    """
    b, c = logits.shape
    zy = logits.gather(1, true[:, None])
    others = logits.scatter(1, true[:, None], float("-inf"))
    order = others.argsort(1, descending=True)  # other classes, strongest first
    pos = torch.arange(c, device=logits.device)[None].expand(b, c)
    decoy = pos < (rank - 1)[:, None]  # positions in `order` that must beat y
    ranked = logits.gather(1, order)
    above = F.relu(zy - ranked + margin) * decoy
    rest = (pos >= (rank - 1)[:, None]) & (pos < k_positions)  # the rest of the top K+1 (with y): below y
    below = F.relu(ranked - zy + margin) * rest
    top = torch.cat([zy, ranked[:, :k_positions]], 1)  # y and the K strongest others
    p = top.log_softmax(1)
    kl = (-torch.log(torch.tensor(float(k_positions + 1))) - p).mean(1)  # KL(U || p) up to a constant
    return above.sum(1) + below.sum(1) + uniform_weight * kl


def true_rank(logits: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Rank (1 = first) of the true class in each row of ``logits``."""
    zy = logits.gather(1, true[:, None])
    return 1 + (logits > zy).sum(1)


def kanon_attack(
    x: torch.Tensor,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    true: torch.Tensor,
    rank: torch.Tensor,
    k_positions: int,
    delta: float = 0.05,
    margin: float = 0.1,
    **kw,
) -> AttackResult:
    """K-A3: iterate until the true class sits at ``rank`` and the top-(K+1) scores are within ``delta`` of
    uniform."""
    def loss(a):
        return kanon_loss(logits_fn(a), true, rank, k_positions, margin)

    def done(a):
        z = logits_fn(a)
        top = torch.cat([z.gather(1, true[:, None]), z.scatter(1, true[:, None], float("-inf"))
                         .topk(k_positions, 1).values], 1).softmax(1)
        return (true_rank(z, true) == rank) & (top.max(1).values <= 1 / (k_positions + 1) + delta)

    return iterate(x, loss, done, **kw)


# --- face de-detection -----------------------------------------------------------------------------------------


def dedetect(
    x: torch.Tensor,
    detector_loss: LossFn,
    detected: DoneFn,
    region: torch.Tensor | None = None,
    **kw,
) -> AttackResult:
    """Face de-detection: descend ``detector_loss`` (``J_det``: the detector's pre-NMS scores on the face pushed
    below its thresholds by a margin, e.g. ``MTCNNDetector.cascade_loss``) until the full detector
    (``detected: x -> (B,) bool``, with its NMS and threshold) no longer finds the face. Only pixels in ``region``
    change."""
    return iterate(x, detector_loss, lambda a: ~detected(a), region=region, **kw)
