"""The one configuration object: defaults here, a YAML preset from ``configs/`` on top, command-line flags last."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from deidcli.errors import ConfigError
from deidcli.targets import parse_targets, per_target

# Face regions grow to 2.0 times the box, the head: in a 1.3 ellipse a recognizer still names people from hair and
# ears (docs/methods.md, Protective defaults). deid run, RegionStyle and deid evaluate all start from this one value.
FACE_MASK_SCALE = 2.0


@dataclass(frozen=True)
class DeidConfig:
    # detection
    targets: str = "face"  # comma list of face, body, plate, vehicle
    detector: str = "centerface"  # the face detector
    threshold: float | str | None = None  # None: each detector's default; or per target, "face=0.3,plate=0.4"
    # COCO detectors by name: yolox-nano (Apache-2.0, inside deid's wheel: nothing to fetch), or torchvision's
    # frcnn-mobilenet, frcnn-resnet50 (BSD, fetched once); or a YOLO model (a name Ultralytics downloads, or a
    # .pt/.onnx path; the yolo extra). Vehicles: cars, motorcycles, buses, trucks.
    body_model: str = "yolox-nano"
    vehicle_model: str = "yolox-nano"
    # named models (detection.yolo.NAMED_MODELS) or YOLO .pt/.onnx paths; a comma list runs each and merges the boxes
    plate_model: str = "safelicensing"
    scale: str = "auto"  # inference scale: "auto" (longest side capped at max_side) or a factor such as "0.5"
    max_side: int = 960
    tile: str = "auto"  # sliced inference: "auto" (frames over 2 x max_side), "off" or "WxH"
    tile_scale: float = 1.0  # enlarge each tile by this before detection (2 finds faces of ~6 px)
    tile_every: int = 0  # run the tiles on every N-th frame (0: every 0.4 s), searching between (tile_schedule.py)
    detect_every: int = 2  # detect every N-th frame, and the frames between where the two sides disagree (keyframes.py)
    detect_batch: int = 0  # frames per face-detector pass: 0 = auto (1 on the CPU, 8 on a GPU)
    # tracking: cover the frames around each detection (see deidcli/tracking/coverage.py)
    track: bool = True
    lookahead_s: float = 0.5  # frames held back for filling gaps backwards
    hold_s: float = 0.2  # a lost track stays covered this long; a new one is carried this far back
    # de-identification
    method: str = "frost"  # one method for every target, or per target: "face=frost,plate=solid"
    strength: float | str | None = None  # None: the method's default; or per target, "face=24,body=16"
    basis: str | None = None  # eigenface basis for pca, hypersphere, ksame (from `deid fit pca`); None: bundled
    model: str | None = None  # autoencoder, autoencoder-ap, gan model (from `deid train`); None: the cache's default
    donors: str | None = None  # folder of donor face photos for replace; None: synthetic faces from the decoder
    consented: str | None = None  # folder of photos of people who consented: their faces stay visible
    consent_distance: float = 0.45  # dlib distance under which a face is that person (dlib's own is 0.6)
    mask_shape: str = "ellipse"
    mask_scale: float = FACE_MASK_SCALE
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seed: int = 0
    device: str = "auto"
    # output
    codec: str = "auto"  # the output container's own encoder: libx264, libvpx-vp9 for WebM
    crf: int | None = None  # None: 18 (visually lossless), 0 where a method's change must survive the encoder
    preset: str = "veryfast"
    exact_size: bool = False  # odd sizes in H.264/HEVC: 4:4:4 at the exact size, not padded to even in 4:2:0
    strip_metadata: bool = False
    overwrite: bool = False
    # places (deidcli/areas/): areas drawn in pixels, zones on the map placed from the flight's telemetry
    areas: str | None = None  # JSON/YAML areas file
    geofence: str | None = None  # GeoJSON of WGS84 zones
    telemetry: str | None = None  # DJI .SRT or CSV flight log; None: the .SRT beside the video
    area_margin: float = 4.0  # metres each zone grows on the ground: consumer GPS and gimbal error (docs/places.md)
    camera_pitch: float | None = None  # degrees, where the telemetry has no gimbal angles (or to override them)
    camera_yaw: float | None = None
    hfov: float | None = None  # degrees; None: from the telemetry's focal length
    ground_alt: float | None = None  # metres above sea level of the ground; None: the take-off height (rel_alt)
    telemetry_gaps: str = "refuse"  # frames the telemetry does not cover: refuse the file, or mask them whole
    # checking: `deid audit` on every finished video (batch and run)
    audit: bool = False
    keep_detections: bool = False  # write the regions anonymized beside the output, for `deid review`
    require_review: bool = False  # deid batch: videos held until a person approves them (batch/review_gate.py)
    audit_every: int = 1  # audit every N-th frame
    fail_on_leak: float | None = None  # exit 11 when a file's audited leak rate is above this (turns the audit on)

    def with_overrides(self, **values: Any) -> "DeidConfig":
        """A copy with every value that is not ``None`` replaced."""
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        cfg = replace(self, **{k: v for k, v in values.items() if v is not None})
        if (cfg.areas or cfg.geofence) and "area" not in parse_targets(cfg.targets):
            cfg = replace(cfg, targets=",".join((*parse_targets(cfg.targets), "area")))  # the places given are hidden
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from deidcli.detection import DETECTORS
        from deidcli.methods import METHODS

        if self.detector not in DETECTORS:
            raise ConfigError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        targets = parse_targets(self.targets)
        for target, name in per_target(self.method, targets, str, "method").items():
            if name is not None and name not in METHODS:
                raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
            if name is not None and METHODS[name].faces_only and target != "face":
                raise ConfigError(f"method {name!r} hides faces from a face detector; it cannot cover a {target}: "
                                  f"give the {target} another method (e.g. --method face={name},{target}=frost)")
        for t in per_target(self.threshold, targets, _number, "threshold").values():
            if t is not None and not 0.0 < t < 1.0:
                raise ConfigError("threshold must be between 0 and 1")
        per_target(self.strength, targets, _number, "strength")
        if self.mask_shape not in ("ellipse", "box"):
            raise ConfigError("mask shape must be 'ellipse' or 'box'")
        if self.mask_scale < 1.0:
            raise ConfigError("mask scale must be at least 1.0 (regions may grow, never shrink)")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError("device must be auto, cpu or cuda")
        if self.scale != "auto":
            try:
                factor = float(self.scale)
            except ValueError:
                raise ConfigError("scale must be 'auto' or a factor such as 0.5") from None
            if not 0.05 <= factor <= 4.0:
                raise ConfigError("scale factor must be between 0.05 and 4")
        if self.tile not in ("auto", "off"):
            w, _, h = str(self.tile).lower().partition("x")
            if not (w.isdigit() and h.isdigit() and int(w) >= 64 and int(h) >= 64):
                raise ConfigError("tile must be auto, off or WxH with sides of at least 64 px (e.g. 1280x1280)")
        if not 0 <= self.detect_batch <= 64:
            raise ConfigError("detect batch must be between 0 (auto) and 64 frames")
        if not 1 <= self.detect_every <= 8:
            raise ConfigError("detect every must be between 1 (every frame) and 8")
        if not 0 <= self.tile_every <= 60:
            raise ConfigError("tile every must be between 0 (auto: every 0.4 s) and 60 frames (1: every frame)")
        if self.audit_every < 1:
            raise ConfigError("audit every must be at least 1")
        if self.fail_on_leak is not None and not 0 <= self.fail_on_leak <= 1:
            raise ConfigError("fail on leak is a rate between 0 and 1")
        if not 0 < self.consent_distance <= 0.6:
            raise ConfigError("consent distance must be above 0 and at most 0.6 (dlib's own match distance)")
        if not 0.25 <= self.tile_scale <= 4:
            raise ConfigError("tile scale must be between 0.25 and 4")
        if self.lookahead_s < 0 or self.hold_s < 0:
            raise ConfigError("lookahead and hold must not be negative")
        if "area" in targets and not (self.areas or self.geofence):
            raise ConfigError("the area target needs --areas or --geofence: the places to hide")
        if self.telemetry and not self.geofence:
            raise ConfigError("--telemetry places a --geofence; give the GeoJSON of the zones too")
        if self.telemetry_gaps not in ("refuse", "mask"):
            raise ConfigError("telemetry gaps must be 'refuse' or 'mask'")
        if not 0 <= self.area_margin <= 1000:
            raise ConfigError("area margin is metres between 0 and 1000")
        if self.camera_pitch is not None and not -90 <= self.camera_pitch <= 30:
            raise ConfigError("camera pitch is degrees from the horizon: -90 (straight down) to 30")
        if self.hfov is not None and not 1 <= self.hfov < 179:
            raise ConfigError("hfov is the horizontal field of view in degrees, between 1 and 179")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ConfigError("crf must be between 0 and 63")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"not a number: {text!r}") from None


def load_config(path: str | Path | None) -> DeidConfig:
    """Defaults, or defaults updated by a YAML preset."""
    cfg = DeidConfig()
    if path is None:
        return cfg
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of settings")
    if "color" in data and data["color"] is not None:
        data["color"] = tuple(float(c) for c in data["color"])
    return cfg.with_overrides(**data)
