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

    def __init__(self, total: int, start: int = 0, enabled: bool = True) -> None:
        self.total, self.start, self.enabled = total, start, enabled
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

    def remaining(self, step: int) -> float:
        """Seconds to the last step at the pace since the start (evaluations included)."""
        done = step - self.start
        return self.elapsed() / done * (self.total - step) if done > 0 else float("nan")

    def forecast(self, step: int, end: int, eval_share: float, device: str) -> str:
        """The time the rest of the run (to `end`) will take at the pace of its steps so far, with
        evaluations taking `eval_share` more; a long run is told how to stop or shorten it."""
        per_step = self.elapsed() / (step - self.start)
        left = per_step * (end - step) * (1 + eval_share)
        text = f"{per_step:.3g} s per iteration: about {format_duration(left)} to go"
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
