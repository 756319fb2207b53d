"""Progress of a run: a live bar (loss, error, images/s, ETA) on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from .stop import format_duration

LONG_RUN = 30 * 60  # seconds: a run this long is told how to stop or shorten it


class Progress:
    """Tracks steps and images; `log` prints a line above the bar. Prints nothing when disabled."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, eval_steps: float = 0.0) -> None:
        """`eval_steps`: what an evaluation costs in training steps, for forecasts before one is timed."""
        self.total, self.start, self.enabled, self.eval_steps = total, start, enabled, eval_steps
        self.console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)
        self._bar = None
        if enabled and self.console.is_terminal:
            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "loss {task.fields[loss]:.3f} · err {task.fields[error]:.1%} · {task.fields[rate]:,.0f} img/s"
                ),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._bar.add_task("train", total=total, completed=start, loss=math_nan(), error=0.0, rate=0.0)
        self._t0 = self._mark = time.perf_counter()
        self._images = 0
        self._rate = 0.0
        self._warm: tuple[int, float] | None = None  # the step and time the pace is measured from
        self._evals, self._eval_seconds = 0, 0.0  # the evaluations timed since then, and their seconds

    def __enter__(self) -> Progress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()

    def update(self, step: int, loss: float, error: float, images: int) -> None:
        """Record `images` trained since the last update; refresh the bar."""
        self._images += images
        now = time.perf_counter()
        if now - self._mark > 0.5:
            self._rate, self._images, self._mark = self._images / (now - self._mark), 0, now
        if self._bar:
            self._bar.update(self._task, completed=step, loss=loss, error=error, rate=self._rate)

    def rate(self) -> float:
        """Training images per second, recently."""
        return self._rate

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def warm(self, step: int) -> None:
        """Mark the end of `step`, the first of the session: its one-time costs (allocations,
        compilation, caches) are paid, and the pace of the steps is measured from here."""
        self._warm = (step, time.perf_counter())

    def evaluated(self, seconds: float) -> None:
        """Record an evaluation (with its logs and checkpoints) that took `seconds`."""
        self._evals += 1
        self._eval_seconds += seconds

    def pace(self, step: int) -> float:
        """Seconds per training step since `warm` (since the start, at the warm step), the evaluations'
        time left out."""
        warm_step, warm_time = self._warm if self._warm and step > self._warm[0] else (self.start, self._t0)
        return (time.perf_counter() - warm_time - self._eval_seconds) / (step - warm_step)

    def remaining(self, step: int, end: int, evaluations: int) -> float:
        """Seconds from `step` to `end` with `evaluations` to do on the way: the steps at the pace so far,
        and each evaluation at the mean time of those timed (`eval_steps` steps before the first)."""
        per_step = self.pace(step)
        per_eval = self._eval_seconds / self._evals if self._evals else self.eval_steps * per_step
        return per_step * (end - step) + per_eval * evaluations

    def forecast(self, step: int, end: int, evaluations: int, device: str) -> str:
        """The time the rest of the run (to `end`, with `evaluations` on the way) will take (`remaining`);
        a long run is told how to stop or shorten it."""
        left = self.remaining(step, end, evaluations)
        text = f"{self.pace(step):.3g} s per iteration: about {format_duration(left)} to go"
        if left > LONG_RUN:
            text += (
                f" on this {device}. Ctrl-C stops with a checkpoint (--resume continues); "
                "--iters N, --time-limit or --recipe fast make it shorter"
            )
        return text

    def log(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)


def math_nan() -> float:
    return float("nan")
