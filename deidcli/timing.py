"""Where a run's time goes: wall seconds spent in each stage (decode, detect, tiles, anonymize, encode).

The stages run in threads of their own and overlap, so the seconds add up to more than the run's wall time; their
shares say which stage to make faster. Each stage is timed by the one thread that runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass
class StageClock:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn``, its calls' wall time added to ``stage``."""
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - t)
        return run

    def timed_iter(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """``items``, the time spent producing each added to ``stage``."""
        it = iter(items)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.add(stage, time.perf_counter() - t)
                return
            self.add(stage, time.perf_counter() - t)
            yield item
