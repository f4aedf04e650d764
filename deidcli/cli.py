"""The ``deid`` command: a thin layer over :mod:`deidcli.pipeline`."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from deidcli import __version__
from deidcli.errors import DeidError, ExitCode

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


@app.command("run")
def run(
    inputs: Annotated[list[Path], typer.Argument(help="Video files, images (jpg, png) or folders of them.")],
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Output file (one input) or folder. Default: NAME_anonymized.EXT beside each input."),
    ] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML preset (see configs/); flags override it.")] = None,
    method: Annotated[
        Optional[str], typer.Option("--method", "-m", help="frost (default: blur + grain), blur, pixelate, noise, impulse or solid.")
    ] = None,
    strength: Annotated[
        Optional[float],
        typer.Option(help="The method's knob at a 112 px face: frost/blur sigma px, pixelate cell px, noise std, impulse density, solid opacity."),
    ] = None,
    mask_shape: Annotated[Optional[str], typer.Option(help="ellipse or box.")] = None,
    mask_scale: Annotated[Optional[float], typer.Option(help="Grow each face box by this factor (default 1.3).")] = None,
    color: Annotated[Optional[str], typer.Option(help="Fill colour for solid: black, white, grey or R,G,B.")] = None,
    detector: Annotated[Optional[str], typer.Option(help="centerface (default) or mtcnn.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="Detection score threshold (centerface 0.2, mtcnn 0.7). Lower finds more.")] = None,
    scale: Annotated[
        Optional[str],
        typer.Option(help="Inference scale: 'auto' (longest side capped at 960 px) or a factor, e.g. 1 for small faces."),
    ] = None,
    track: Annotated[
        Optional[bool],
        typer.Option("--track/--no-track", help="Track faces and cover the frames the detector missed (default on)."),
    ] = None,
    lookahead: Annotated[
        Optional[float], typer.Option(help="Seconds held back to fill detection gaps backwards (default 0.5).")
    ] = None,
    hold: Annotated[
        Optional[float], typer.Option(help="Seconds a lost face stays covered, and a new one is covered early (0.2).")
    ] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    codec: Annotated[Optional[str], typer.Option(help="Video encoder (libx264, libx265, h264_nvenc...).")] = None,
    crf: Annotated[Optional[int], typer.Option(help="Encoder quality, lower is better (default 18, visually lossless).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="x264/x265 preset (default veryfast).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for the noise methods.")] = None,
    strip_metadata: Annotated[
        bool, typer.Option("--strip-metadata", help="Drop global and stream metadata (GPS included) and data streams.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Write a JSON report of the run here.")] = None,
) -> None:
    """Anonymize every face in the inputs and write new files; inputs are never modified."""
    from deidcli.config import load_config
    from deidcli.media import plan_jobs
    from deidcli.pipeline import run_jobs
    from deidcli.progress import FrameProgress
    from deidcli.report import build_report, write_report

    t0 = time.perf_counter()
    cfg = load_config(config).with_overrides(
        method=method, strength=strength, mask_shape=mask_shape, mask_scale=mask_scale, color=_parse_color(color),
        detector=detector, threshold=threshold, scale=scale, device=device, track=track, lookahead_s=lookahead,
        hold_s=hold, codec=codec, crf=crf, preset=preset,
        seed=seed, strip_metadata=strip_metadata or None, overwrite=overwrite or None,
    )
    jobs = plan_jobs(inputs, output)
    with FrameProgress(enabled=not quiet) as bar:
        results = run_jobs(jobs, cfg, on_start=bar.start, on_advance=bar.advance)
    if report is not None:
        write_report(build_report(cfg, results, time.perf_counter() - t0), report)
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        typer.echo(f"deid: error: {r.error}", err=True)
    if not quiet:
        for r in results:
            if r.status == "ok":
                typer.echo(f"{r.output}  ({r.frames} frames, {sum(r.faces_per_frame)} faces, {r.fps:.1f} fps)", err=True)
    if failed:
        raise typer.Exit(failed[0].exit_code)


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # so temporary outputs are removed on kill, as on Ctrl-C
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
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(int(ExitCode.USAGE))
        raise
