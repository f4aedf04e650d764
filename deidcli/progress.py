"""A rich progress bar with frames, fps and ETA, fed by the pipeline's hooks."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class FpsColumn(ProgressColumn):
    def __init__(self, per_minute: bool = False) -> None:
        super().__init__()
        self.per_minute = per_minute  # slow work (an evaluation setting takes seconds) reads better per minute

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if self.per_minute:
            return Text(f"{speed * 60:5.1f}/min" if speed else "  .../min", style="progress.data.speed")
        if speed and speed < 1:  # the adversarial methods on a CPU: seconds a frame say more than 0.0 fps
            return Text(f"{1 / speed:5.1f} s/frame", style="progress.data.speed")
        return Text(f"{speed:5.1f} fps" if speed else "  ... fps", style="progress.data.speed")


class FrameProgress:
    """Context manager whose ``start``/``advance`` match :mod:`deidcli.pipeline`'s hooks."""

    def __init__(self, enabled: bool = True, unit: str = "frames") -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            FpsColumn(per_minute=unit != "frames"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self._task = None

    def __enter__(self) -> "FrameProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def start(self, total: int | None, description: str) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)
