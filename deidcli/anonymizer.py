"""Per-frame work: detect faces, then anonymize every detected region. Nothing is written without passing here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from deidcli.config import DeidConfig
from deidcli.consent import ConsentGallery, ConsentLog, split_consented
from deidcli.detection import FaceDetector, build_detector, inference_scale
from deidcli.detection.coco_torchvision import COCO_MODELS, CocoNet, TorchvisionDetector
from deidcli.detection.ensemble import EnsembleDetector
from deidcli.detection.keyframes import search_around
from deidcli.detection.plates import PLATE_MODELS, PlateDetector
from deidcli.detection.tile_schedule import TileLayer
from deidcli.detection.tiling import TiledDetector, merge, parse_tile, tile_grid
from deidcli.detection.yolo import VEHICLES, YoloDetector
from deidcli.detection.yolox import YOLOX_MODELS, YOLOX_THRESHOLD, YoloxDetector, YoloxNet
from deidcli.detections import Detections
from deidcli.errors import ConfigError, ModelUnavailableError
from deidcli.methods import get_method
from deidcli.methods.regions import Coding, FallbackLog, RegionStyle, anonymize_frame
from deidcli.methods.stored_check import Probe
from deidcli.targets import CLASS_ID, parse_targets, per_target


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA GPU")
    return torch.device(device)


def method_names(cfg: DeidConfig) -> list[str]:
    """The method of each target ``cfg`` anonymizes, in target order."""
    targets = parse_targets(cfg.targets)
    methods = per_target(cfg.method, targets, str, "method")
    return [methods[t] or DeidConfig.method for t in targets]


def eight_bit(image: np.ndarray) -> np.ndarray:
    """The 8-bit view of a frame, which the detectors and recognizers were trained on."""
    return image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)


def _target_detector(cfg: DeidConfig, target: str, threshold: float | None, device: str,
                     coco: dict[str, CocoNet | YoloxNet]) -> FaceDetector:
    """The detector of one target, as configured (YOLO paths need the yolo extra; the named plate models do not);
    ``coco`` holds the COCO networks (YOLOX, torchvision) loaded so far, shared by the targets that name the same
    one."""
    if target == "face":
        return build_detector(cfg.detector, threshold, device)
    if target in ("body", "vehicle"):
        model, flag = (cfg.body_model, "--body-model") if target == "body" else (cfg.vehicle_model, "--vehicle-model")
        wanted = ("person",) if target == "body" else VEHICLES
        if model in YOLOX_MODELS:  # inside deid's wheel, Apache-2.0: nothing to fetch, no extra
            if model not in coco:
                coco[model] = YoloxNet(model, flag, device, cfg.max_side)
            return YoloxDetector(model, flag, threshold or YOLOX_THRESHOLD, device, wanted, net=coco[model])
        if model in COCO_MODELS:  # torchvision's, BSD: no extra needed, fetched once
            if model not in coco:
                coco[model] = CocoNet(model, flag, device)
            return TorchvisionDetector(model, flag, threshold or 0.3, device, wanted, net=coco[model])
        return YoloDetector(model, flag, threshold or 0.25, cfg.max_side, device, wanted=wanted)
    models = [m.strip() for m in str(cfg.plate_model or "").split(",") if m.strip()]
    if not models:
        raise ModelUnavailableError("the plate target needs --plate-model (safelicensing, platedet or a YOLO path)")
    dets = [PlateDetector(m, threshold or 0.25, cfg.max_side, device) if m in PLATE_MODELS
            else YoloDetector(m, "--plate-model", threshold or 0.25, cfg.max_side, device) for m in models]
    return dets[0] if len(dets) == 1 else EnsembleDetector(dets)


def tiled(det: FaceDetector, target: str, cfg: DeidConfig) -> TiledDetector:
    """``det`` with tiles as configured: faces on the even grid (deidcli/detection/tiling.py), the YOLO and COCO
    targets on the sliding grid with a quarter's overlap their recall was measured on (the fisheye clip's 10 plates
    need it: the even grid found 9)."""
    if target == "face":
        return TiledDetector(det, cfg.tile, cfg.max_side, cfg.tile_scale)
    return TiledDetector(det, cfg.tile, cfg.max_side, 1.0, overlap=0.25, grid=tile_grid)


def _mask_scale(cfg: DeidConfig, target: str) -> float:
    """How much a target's box grows: a face to the head; a body, plate or vehicle a little; an area not at all (its
    polygon was grown by its own margin, deidcli/areas/places.py)."""
    if target == "face":
        return cfg.mask_scale
    return 1.0 if target == "area" else max(1.1, min(cfg.mask_scale, 1.2))


@dataclass
class FrameAnonymizer:
    """Detects every target in a frame and anonymizes each region with its target's style."""

    detectors: dict[str, FaceDetector]  # target name -> detector
    styles: dict[int, RegionStyle]  # class id -> style
    scale: str | float
    max_side: int
    device: torch.device
    consent: ConsentGallery | None = None  # faces of these people stay visible
    track_styles: dict[int, RegionStyle] = field(default_factory=dict)  # a reviewer's method for one track

    @classmethod
    def from_config(cls, cfg: DeidConfig) -> "FrameAnonymizer":
        """Builds every detector first, so missing weights fail before any frame is read."""
        device = resolve_device(cfg.device)
        targets = parse_targets(cfg.targets)
        methods = per_target(cfg.method, targets, str, "method")
        strengths = per_target(cfg.strength, targets, float, "strength")
        thresholds = per_target(cfg.threshold, targets, float, "threshold")
        detectors: dict[str, FaceDetector] = {}
        styles: dict[int, RegionStyle] = {}
        missing: list[str] = []  # every unavailable model, one line each, before any frame
        coco: dict[str, CocoNet | YoloxNet] = {}
        for t in targets:
            styles[CLASS_ID[t]] = RegionStyle(
                method=get_method(methods[t] or DeidConfig.method, cfg.basis, device, cfg.model, cfg.donors),
                strength=strengths[t],
                # Faces are round; an ellipse on a body or plate box would leave its corners.
                mask_shape=cfg.mask_shape if t == "face" else "box",
                mask_scale=_mask_scale(cfg, t),
                color=cfg.color,
                seed=cfg.seed + CLASS_ID[t],
            )
            if t == "area":  # placed in each frame (deidcli/areas/), not detected
                continue
            try:
                det = _target_detector(cfg, t, thresholds[t], device.type, coco)
            except ModelUnavailableError as exc:
                missing.append(str(exc))
                continue
            if cfg.tile != "off":
                det = tiled(det, t, cfg)
            detectors[t] = det
        if missing:
            raise ModelUnavailableError("\n".join(missing))
        consent = None
        if cfg.consented:
            if "face" not in targets:
                raise ConfigError("--consented needs the face target")
            consent = ConsentGallery.from_folder(
                Path(cfg.consented), build_detector(cfg.detector, None, device.type), max_distance=cfg.consent_distance
            )
        return cls(detectors, styles, cfg.scale, cfg.max_side, device, consent)

    def restyle_tracks(self, methods: dict[int, tuple[str, str]], cfg: DeidConfig) -> None:
        """Give tracks a method of their own: ``{track id: (target, method name)}`` (a reviewer's corrections);
        the rest of the target's style (mask, seed) is kept."""
        for tid, (target, name) in methods.items():
            base = self.styles.get(CLASS_ID[target])
            if base is None:
                raise ConfigError(f"track {tid} is a {target}, which this run does not anonymize (--targets)")
            method = get_method(name, cfg.basis, self.device, cfg.model, cfg.donors)
            if method.faces_only and target != "face":
                raise ConfigError(f"method {name!r} hides faces only; track {tid} is a {target}")
            self.track_styles[tid] = replace(base, method=method, strength=None)

    def detect(self, image: np.ndarray, tiles: bool = True) -> Detections:
        """Every target in ``image`` (H x W x 3 RGB, uint8 or 16-bit), in its pixel coordinates; class ids as in
        TARGETS. ``tiles=False``: faces from the whole-frame pass only (a video's tiles are a layer of their own,
        :meth:`tile_layer`)."""
        image = eight_bit(image)
        parts = [self._detect_target(image, target, tiles) for target in self.detectors]
        return Detections.concat(parts)

    def _face_detector(self, tiles: bool = True) -> FaceDetector | None:
        det = self.detectors.get("face")
        return det.base if not tiles and isinstance(det, TiledDetector) else det

    def _detect_target(self, image: np.ndarray, target: str, tiles: bool = True) -> Detections:
        h, w = image.shape[:2]
        scale = inference_scale(w, h, self.scale, self.max_side) if target == "face" else 1.0
        det = self._face_detector(tiles) if target == "face" else self.detectors[target]
        d = det.detect(image, scale)
        d.class_id[:] = CLASS_ID[target]
        return d

    def tile_layer(self, width: int, height: int) -> TileLayer | None:
        """The face detector's tiles as a layer of their own for ``width x height`` frames
        (deidcli/detection/tile_schedule.py), or ``None`` where it cuts no tiles."""
        det = self.detectors.get("face")
        if isinstance(det, TiledDetector) and det.tiles(width, height):
            return TileLayer(det, CLASS_ID["face"], inference_scale(width, height, self.scale, self.max_side))
        return None

    def detect_keyframe(self, image: np.ndarray, tiles: bool = True) -> tuple[Detections, Detections]:
        """:meth:`detect`'s regions, and the faces that scored just under the threshold (only where the face
        detector can tell: CenterFace on the whole frame), which deidcli/detection/keyframes.py searches for on the
        frames it does not detect whole: a face that flickers across the threshold is still found there."""
        return self.detect_keyframes([image], tiles)[0]

    def detect_keyframes(self, images: list[np.ndarray], tiles: bool = True) -> list[tuple[Detections, Detections]]:
        """:meth:`detect_keyframe` on each image, the face detector's passes batched across them where it can
        batch (CenterFace on frames that need no tiles): on a GPU one pass over several frames costs little more
        than one over a single frame. The same regions as one by one."""
        many = getattr(self._face_detector(tiles), "detect_with_candidates_many", None)
        if many is None or not images:
            return [(self.detect(image, tiles), Detections.empty()) for image in images]
        images = [eight_bit(image) for image in images]
        h, w = images[0].shape[:2]
        out = []
        for image, (faces, candidates) in zip(images, many(images, inference_scale(w, h, self.scale, self.max_side))):
            faces.class_id[:] = candidates.class_id[:] = CLASS_ID["face"]
            others = [self._detect_target(image, t, tiles) for t in self.detectors if t != "face"]
            out.append((Detections.concat([faces, *others]), candidates))
        return out

    def torch_threads(self) -> int:
        """Threads torch should use for this anonymizer's regions: one on the CPU when every method is a light
        per-region filter (a face is a few thousand pixels: a second thread only waited, spinning against the
        detector and the encoder; the street clip ran in 14.6 s with one against 22.5 s with two), all cores for
        networks (the generative and adversarial methods)."""
        light = all(style.method.needs in (None, "basis") for style in self.styles.values())
        return 1 if light and self.device.type == "cpu" else torch.get_num_threads()

    def detect_near(self, image: np.ndarray, near: Detections, tiles: bool = True) -> Detections | None:
        """The faces in crops of ``image`` around the boxes of ``near`` (:func:`search_around`), at the scale
        :meth:`detect` runs the whole frame at (and the tiles' where ``tiles``); ``None`` when ``near`` holds
        another target (YOLO letterboxes every input to its own size, so a crop would not be searched as the frame
        is: detect the whole frame)."""
        face = CLASS_ID["face"]
        if "face" not in self.detectors or (near.class_id != face).any():
            return None
        image = eight_bit(image)
        h, w = image.shape[:2]
        det, scales = self.detectors["face"], [inference_scale(w, h, self.scale, self.max_side)]
        if isinstance(det, TiledDetector):  # a crop needs no tiles: the whole-frame pass is the base detector's
            if tiles and parse_tile(det.tile, w, h, det.max_side) is not None:
                scales.append(det.tile_scale)  # and the tiles' finer scale finds what they found
            det = det.base
        found = merge([search_around(det, image, near.xyxy, s) for s in scales], 0.3)
        found.class_id[:] = face
        return found

    def anonymize(self, image: np.ndarray, dets: Detections, index: int = 0, consent_log: ConsentLog | None = None,
                  fallbacks: FallbackLog | None = None, changed: list[tuple[int, int, int, int]] | None = None,
                  coding: Coding | None = None, given: list[tuple[str, Probe, int]] | None = None
                  ) -> np.ndarray:
        """A copy of ``image`` with every region in ``dets`` anonymized with its target's style (except the faces
        of consented people, checked on this frame's pixels, with each decision added to ``consent_log``); regions
        a method could not do are frosted and counted in ``fallbacks``; every rectangle written to is added to
        ``changed`` (nothing outside them differs from ``image``). ``coding``: the picture as the output stores it
        (a lossy round trip), where a whole-frame method checks its result too; ``given`` gets ``(method name,
        probe, faces)`` for each set of faces given to a method an encoder can undo (consented faces are not), for
        the check of the encoded file (deidcli/methods/stored_check.py)."""
        if self.consent is not None:
            dets = split_consented(eight_bit(image), dets, self.consent, CLASS_ID["face"], index, consent_log)
        out = image
        for cid, style in self.styles.items():
            subset = dets[dets.class_id == cid] if len(self.styles) > 1 else dets
            parts = [(subset, style)]
            if self.track_styles and len(subset) and subset.tracker_id is not None:
                own = np.isin(subset.tracker_id, list(self.track_styles))
                parts = [(subset[~own], style)] + [(subset[subset.tracker_id == t], self.track_styles[int(t)])
                                                   for t in np.unique(subset.tracker_id[own])]
            for part, part_style in parts:
                if len(part):
                    out = self._apply(image, out, part, part_style, index, fallbacks, changed, coding, given)
        return out.copy() if out is image else out

    def _apply(self, image: np.ndarray, out: np.ndarray, subset: Detections, style: RegionStyle, index: int,
               fallbacks: FallbackLog | None, changed: list | None, coding: Coding | None,
               given: list | None) -> np.ndarray:
        out = anonymize_frame(out, subset, style, index, self.device, fallbacks, changed, coding)
        method = style.method
        if given is not None and method.stored_probe is not None:
            strength = method.default_strength if style.strength is None else style.strength
            probe = method.stored_probe(method.model, eight_bit(image), subset.xyxy, strength)
            given.append((method.name, probe, len(subset)))
        return out

    def __call__(self, image: np.ndarray, index: int = 0, consent_log: ConsentLog | None = None,
                 fallbacks: FallbackLog | None = None, coding: Coding | None = None) -> tuple[np.ndarray, Detections]:
        """Detect and anonymize one image on its own (no tracking): the anonymized copy and what was found."""
        dets = self.detect(image)
        return self.anonymize(image, dets, index, consent_log, fallbacks, coding=coding), dets
