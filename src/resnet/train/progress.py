"""Progress of a run: a live bar (loss, error, images/s, ETA) on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


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

    def log(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)


def math_nan() -> float:
    return float("nan")
