"""Names, strengths and size scaling of the de-identification methods.

A method's ``strength`` is its own knob (``methods.md`` section 10), given for a 112-pixel face crop and scaled with
the region's height, so a face far from the camera and one filling the frame are anonymized alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from deidcli.methods import adversarial_methods, basis_methods, generative_methods, naive
from deidcli.methods.eigenfaces import FaceBasis
from deidcli.methods.reconstruction import svd_truncate

REFERENCE_SIZE = 112


@dataclass(frozen=True)
class Method:
    name: str
    default_strength: float
    strength_meaning: str
    stronger_is: str  # "higher" or "lower": which way of the knob removes more identity
    random: bool
    _fn: Callable[..., torch.Tensor]
    needs: str | None = None  # the model it needs, given by bind(): "basis" (eigenfaces) or "facenet"
    # Adversarial methods change a recognizer's square crop exactly: the region is made square (the box's height
    # both ways) and pasted back unfeathered, so the model later reads the very pixels the attack optimised.
    exact_crop: bool = False
    # Methods that must see the whole frame (a detector's image pyramid spans it): ``frame_fn(frame, boxes, model,
    # strength, coding=None) -> (frame, still_found)``, ``coding`` the frame as the output stores it (a lossy round
    # trip, or None); regions it could not handle are frosted by anonymize_frame.
    frame_fn: Callable[..., tuple[Any, Any]] | None = None
    faces_only: bool = False  # aimed at a face detector: meaningless (and leaky) on bodies and plates
    # Methods made for the 8-bit frame that an encoder can undo: ``stored_probe(model, frame, boxes, strength)``
    # gives ``probe(written) -> (N,) bool``, the faces whose goal the written frame misses (methods/stored_check.py).
    stored_probe: Callable[..., Callable[[Any], Any]] | None = None
    # Fail closed: a region whose written pixels changed by less than this (mean, in grey levels over the face)
    # did not get the method's protection and is frosted instead. Adversarial methods change a few grey levels by
    # design and say themselves whether they reached their goal; for them any change at all is required.
    min_change: float = 1.0
    natural: bool = False  # the output still looks like a face (a person's, not a blur's): the --method help says so
    uses_landmarks: bool = False  # takes the detector's five landmarks, to align the face it makes
    policy: str = ""  # how a target identity or donor is chosen, for the report (methods.md 4: record the policy)
    model: Any = None
    # The weakest strength measured to protect faces from dlib and FaceNet (PROTECTIVE_DEFAULTS, filled in at
    # import); None where it was not measured. `deid run` warns when a weaker one is asked for.
    protective_strength: float | None = None
    # Measured, and no strength of its sweep protected (PROTECTIVE_DEFAULTS): `deid run` warns at any strength,
    # with the measurement's note (what did and did not protect).
    never_protective: bool = False
    protective_note: str = ""

    def bind(self, model: Any) -> "Method":
        """This method with its model (a ``BasisModel``) and that model's per-run state."""
        return replace(self, model=model)

    def weaker_than_protective(self, strength: float) -> bool:
        """Is ``strength`` on the weak side of :attr:`protective_strength` (which side: :attr:`stronger_is`)?"""
        p = self.protective_strength
        if p is None:
            return False
        return strength < p if self.stronger_is == "higher" else strength > p

    def __call__(self, crops: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Apply to ``crops: (B, C, H, W)`` in ``[0, 1]``; pixel parameters are scaled by ``H / 112``. The
        arguments are :meth:`apply`'s; only the crops come back."""
        return self.apply(crops, *args, **kwargs)[0]

    def apply(
        self,
        crops: torch.Tensor,
        strength: float | None = None,
        generator: torch.Generator | None = None,
        color: tuple[float, float, float] = (0.0, 0.0, 0.0),
        inner: float = 1.0,
        track: Hashable | None = None,
        landmarks: torch.Tensor | None = None,
        coding: Callable[[Any], Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The method applied to ``crops: (B, C, H, W)`` in ``[0, 1]`` (pixel parameters scaled by ``H / 112``), and
        whether each crop met the method's goal ``(B,)``, with the reason when one did not.

        ``inner`` is the share of the crop's height that the detector's box takes (the crop is the box grown by the
        mask scale); ``track`` names the person, for methods that keep a choice along a track (k-Same, the
        generative targets); ``landmarks: (B, 5, 2)`` in crop pixels, when the detector gave them; ``coding``
        (``h x w x 3`` uint8 -> the same, as the output stores it) for a method an encoder can undo. Methods
        with a goal of their own (an adversarial attack's distance) return ``(crops, met, reason)``; the others
        always meet theirs, which :func:`~deidcli.methods.regions.anonymize_frame` still checks by the change
        written.
        """
        if self.needs and self.model is None:
            raise ValueError(f"method {self.name!r} needs a model ({self.needs}): get it with get_method()")
        s = self.default_strength if strength is None else float(strength)
        args = (crops, s, crops.shape[-2] / REFERENCE_SIZE, generator, color, inner, track, self.model)
        kwargs: dict[str, Any] = {"landmarks": landmarks} if self.uses_landmarks else {}
        if coding is not None and self.stored_probe is not None:
            kwargs["coding"] = coding
        out = self._fn(*args, **kwargs)
        if isinstance(out, tuple):
            return out
        return out, torch.ones(len(crops), dtype=torch.bool, device=crops.device), ""


def _blur(x, s, scale, g, color, *_):
    return naive.fast_gaussian_blur(x, s * scale)


FROST_GRAIN = 0.08


def _frost(x, s, scale, g, color, *_):
    # Grain after the blur: a deconvolution has nothing clean to invert, and no structure of the face survives.
    return naive.gaussian_noise(naive.fast_gaussian_blur(x, s * scale), FROST_GRAIN, generator=g)


def _pixelate(x, s, scale, g, color, *_):
    return naive.pixelate(x, max(1, round(s * scale)))


def _noise(x, s, scale, g, color, *_):
    return naive.gaussian_noise(x, s, generator=g)


def _impulse(x, s, scale, g, color, *_):
    return naive.impulse_noise(x, s, generator=g)


def _solid(x, s, scale, g, color, *_):
    return naive.solid(x, color, alpha=s)


def _svd(x, s, scale, g, color, *_):
    # Rank is counted at a 112 px crop: a 30 px face keeps as little of itself as a 300 px one. Any positive
    # strength keeps at least rank 1; only 0 itself keeps nothing (rank 0).
    return svd_truncate(x, max(1, round(s * scale)) if s > 0 else 0).clamp(0, 1)


# Default strengths: the measured protective strength (PROTECTIVE_DEFAULTS) where the old default was weaker (svd,
# pca); where it was stronger it stays (frost 24, blur 16, pixelate 16): at the measured 8 a small face of the street
# clip keeps SSIM 0.54 against the original, over the audit's leak line of 0.5. A measurement only strengthens.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "frost", 24.0, "blur sigma in pixels at a 112 px face, plus grain (std 0.08)", "higher", True, _frost
        ),
        Method("blur", 16.0, "Gaussian sigma in pixels at a 112 px face", "higher", False, _blur),
        Method("pixelate", 16.0, "mosaic cell size in pixels at a 112 px face", "higher", False, _pixelate),
        Method("noise", 4.0, "standard deviation of additive Gaussian noise, in 0-1 intensity units (it protects "
               "only where it drowns the face: 4)", "higher", True, _noise),
        Method("impulse", 0.95, "fraction of pixels set to salt or pepper", "higher", True, _impulse),
        Method("solid", 1.0, "opacity of the fill colour (below 1 with black = darkening)", "higher", False, _solid),
        Method("svd", 0.0, "rank kept of each colour channel, at a 112 px face", "lower", False, _svd),
        Method(
            "pca", 0.0, "eigenfaces kept (0 = the mean face)", "lower", False, basis_methods.pca_method, "basis"
        ),
        Method(
            "hypersphere", 0.0, "radius in whitened eigenface space (64 dims; a typical face about 8, 0 the mean "
            "face); the face is rebuilt from the projected coefficients", "lower",
            False, basis_methods.hypersphere_method, "basis",
        ),
        Method(
            "ksame", 100.0, "k: each face becomes the mean of at least k of the basis' gallery faces (100 bundled)",
            "higher", False,
            basis_methods.ksame_method, "basis",
        ),
        Method(
            "ifgvm", 1.0, "FaceNet embedding distance to reach from the original (1.0 = no longer a match)",
            "higher", False, adversarial_methods.ifgvm_method, "facenet", True, min_change=0.0,
            stored_probe=adversarial_methods.ifgvm_probe,
        ),
        Method(
            "dedetect", 0.1, "margin below MTCNN's thresholds that every candidate on the face must fall", "higher",
            False, adversarial_methods.dedetect_crops, "mtcnn", frame_fn=adversarial_methods.dedetect_frame,
            faces_only=True, min_change=0.0, stored_probe=adversarial_methods.dedetect_probe,
        ),
        Method(
            "autoencoder", 1.0, "how far the face's code moves to the mean code (0-1; 1: one mean face for all)",
            "higher", False,
            generative_methods.autoencoder_method, "generative", natural=True, uses_landmarks=True,
        ),
        Method(
            "autoencoder-ap", 1.0, "how far the code moves to the attribute-preserving encoder's (0-1)", "higher",
            False, generative_methods.autoencoder_ap_method, "generative", natural=True, uses_landmarks=True,
        ),
        Method(
            "gan", 1.0, "how far the code moves from the face's own to the target identity's (0-1)", "higher", True,
            generative_methods.gan_method, "generative", natural=True, uses_landmarks=True,
            policy=generative_methods.GAN_POLICY,
        ),
        Method(
            "replace", 1.0, "opacity of the donor face (1 = the donor alone)", "higher", True,
            generative_methods.replace_method, "donors", natural=True, uses_landmarks=True,
            policy=generative_methods.REPLACE_POLICY,
        ),

    )
}


def unavailable(name: str) -> str | None:
    """Why method ``name`` cannot run with its default model here (one line), or None: the generative methods need
    the ``generative`` extra (their models are trained on first use: :func:`untrained`)."""
    from deidcli.errors import ModelUnavailableError

    needs = METHODS[name].needs
    if needs not in ("generative", "donors"):
        return None
    from deidcli.generative import synthetic

    try:
        synthetic.weights_path()
    except ModelUnavailableError as exc:
        return str(exc)
    return None


def untrained(names: list[str], model: Path | str | None = None) -> list[str]:
    """The methods among ``names`` whose default model the first run must train (:func:`~deidcli.generative.model.
    ensure_default`): generative, no ``model`` given, the extra installed, nothing in the cache yet."""
    if model is not None:
        return []
    out = []
    for name in dict.fromkeys(names):
        if name in METHODS and METHODS[name].needs == "generative" and unavailable(name) is None:
            from deidcli.generative.model import needs_training

            if needs_training(name):
                out.append(name)
    return out


def train_untrained(names: list[str], model: Path | str | None = None, progress=None) -> list[str]:
    """Train the default models :func:`untrained` names, showing their steps on ``progress`` (a
    :class:`~deidcli.progress.FrameProgress`); returns the methods trained."""
    from deidcli.generative.model import ensure_default

    todo = untrained(names, model)
    for name in todo:
        ensure_default(name, progress)
    return todo


def get_method(
    name: str, basis: FaceBasis | Path | str | None = None, device: torch.device | str = "cpu",
    model: Path | str | None = None, donors: Path | str | None = None,
) -> Method:
    """The method called ``name``, ready to call, with fresh per-run state: eigenface methods load ``basis``
    (default: the bundled one), generative ones ``model`` (default: the cache's, trained there on first use), ``replace``
    its ``donors`` folder (default: faces sampled from the decoder)."""
    try:
        method = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
    if method.needs is None:
        return method
    if method.needs == "mtcnn":
        from deidcli.detection.mtcnn import MTCNNDetector

        return method.bind(MTCNNDetector(device=str(device)))
    if method.needs == "generative":
        from deidcli.generative.model import GenerativeModel

        return method.bind(GenerativeModel.load(Path(model) if model else None, name, device))
    if method.needs == "donors":
        return method.bind(generative_methods.DonorBank.load(Path(donors) if donors else None, device))
    if method.needs == "facenet":
        from deidcli.recognition.recognizer import FaceNetRecognizer

        return method.bind(FaceNetRecognizer(device=device))
    if not isinstance(basis, FaceBasis):
        basis = FaceBasis.load(basis)
    return method.bind(basis_methods.BasisModel(basis.to(device)))


# The measured defaults: per method, the weakest strength of its sweep that protects by deid evaluate's rule on one
# half of the shared identities and is confirmed on the other (written by scripts/measure_defaults.py,
# `make defaults`).
PROTECTIVE_DEFAULTS = Path(__file__).parent / "data" / "protective_defaults.json"


def _measured(path: Path) -> dict[str, dict]:
    try:
        return dict(json.loads(Path(path).read_text())["methods"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _strengths(measured: dict[str, dict]) -> dict[str, float]:
    return {name: float(m["default"]) for name, m in measured.items()
            if isinstance(m, dict) and m.get("default") is not None}


def _never(measured: dict[str, dict]) -> set[str]:
    return {name for name, m in measured.items() if isinstance(m, dict) and "default" in m and m["default"] is None}


def load_protective_strengths(path: Path = PROTECTIVE_DEFAULTS) -> dict[str, float]:
    """``{method: strength}`` from the measured defaults' file; methods it finds no protecting strength for, or
    does not list, are left out (and so is everything when the file is missing or unreadable)."""
    return _strengths(_measured(path))


def load_never_protective(path: Path = PROTECTIVE_DEFAULTS) -> set[str]:
    """Methods the measured defaults' file lists with no protecting strength at all (``"default": null``)."""
    return _never(_measured(path))


def _apply_measured(measured: dict[str, dict]) -> None:
    """Fill in each method's measured protective strength, or mark it as never protective (the file read once)."""
    strengths, never = _strengths(measured), _never(measured)
    for name in METHODS.keys() & (strengths.keys() | never):
        METHODS[name] = replace(METHODS[name], protective_strength=strengths.get(name), never_protective=name in never,
                                protective_note=str(measured[name].get("note", "")) if name in never else "")


_apply_measured(_measured(PROTECTIVE_DEFAULTS))
