"""Progress and cancel: what a long run reports, and how a caller stops it.

`StepWatch` counts steps (denoising steps, or frames for the camera engine), reports each to the
caller's `on_progress`, and raises `Cancelled` at the next step once the caller's cancel flag is
set, before anything is decoded or written. Families hook it into their pipeline (see
`Family.watch_steps`); benchmarks use it to time steps. It knows nothing about models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from .errors import Cancelled

# "refining": a caller's stage before the engine's (the studio refines a prompt first).
# "compiling": the first run after a compile, whose first step holds the warm-up (minutes).
# "interpolating" and "upscaling" count frames after the model's work.
Stage = Literal["refining", "loading", "compiling", "denoising", "rendering", "interpolating", "upscaling", "encoding"]


@dataclass(frozen=True)
class Progress:
    """One progress report: `step` of `total` done in `stage`, with seconds elapsed and left; a long
    video's reports say which of its segments is being made (`segment` of `segments`)."""

    stage: Stage
    step: int
    total: int
    elapsed: float
    eta: float | None
    segment: int = 1
    segments: int = 1

    def whole(self) -> Progress:
        """A long video's report as steps of the whole chain (segment 2 of 3, step 5 of 30: step 35
        of 90), its time left counting the segments still to come as long as this one."""
        if self.segments == 1:
            return self
        left = self.segments - self.segment
        eta = None if self.eta is None else self.eta + left * (self.elapsed + self.eta)
        return Progress(self.stage, (self.segment - 1) * self.total + self.step, self.segments * self.total,
                        self.elapsed, eta, self.segment, self.segments)  # fmt: skip


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


OnProgress = Callable[[Progress], None]


class StepWatch:
    """Counts steps, reports progress, and stops the run when cancel is set."""

    def __init__(self, stage: Stage, total: int, on_progress: OnProgress | None, cancel: CancelFlag | None):
        self.stage, self.total, self.on_progress, self.cancel = stage, total, on_progress, cancel
        self.done = 0
        self.started = time.monotonic()
        self.first_done: float | None = None

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("run.cancelled")

    def step(self, done: int | None = None) -> None:
        self.done = min(self.total, self.done + 1 if done is None else done)
        now = time.monotonic()
        if self.done == 1:
            self.first_done = now  # the first step may hold a compile warm-up: the ETA starts after it
        if self.on_progress is not None:
            elapsed = now - self.started
            eta = None
            if self.done >= 2 and self.first_done is not None:
                eta = (now - self.first_done) / (self.done - 1) * (self.total - self.done)
            elif self.done == self.total:
                eta = 0.0
            self.on_progress(Progress(self.stage, self.done, self.total, elapsed, eta))
        self.check_cancel()


def report(on_progress: OnProgress | None, stage: Stage, elapsed: float = 0.0) -> None:
    """A stage that has no steps (loading, encoding) has begun."""
    if on_progress is not None:
        on_progress(Progress(stage, 0, 1, elapsed, None))
