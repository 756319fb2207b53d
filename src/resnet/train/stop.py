"""Stopping cleanly: SIGTERM, SIGINT and SIGUSR1 (what Slurm, Kubernetes and a laptop's shutdown send
before they kill a job) and a time limit become a request to stop after the current step, with a
checkpoint. A second signal stops at once."""

from __future__ import annotations

import re
import signal
import threading
import time

from ..errors import UsageError

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
TIME_LIMIT_CODE = 75  # EX_TEMPFAIL: a temporary failure, run it again (requeue)


def parse_duration(text: str | float | int) -> float:
    """Seconds in "90m", "2h30m", "1h", "45s", "1d" or a plain number of seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        parts = re.fullmatch(
            r"\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*",
            text,
        )
        if not text.strip() or parts is None:
            raise ValueError(f"{text!r} is not a duration (e.g. 90m, 2h30m, 45s)")
        d, h, m, s = (float(p) if p else 0.0 for p in parts.groups())
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    if not seconds > 0:
        raise ValueError(f"a time limit must be positive, not {text!r}")
    return seconds


def parse_time_limit(value: str | float | int | None) -> float | None:
    """Seconds of a --time-limit (None: no limit); UsageError naming the option when it is not a duration."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise UsageError(f"--time-limit: {e}") from None


def format_duration(seconds: float) -> str:
    """ "2h50m", "12m", "40s": the way parse_duration reads them."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


class StopRequest:
    """While entered: the first of SIGNALS is noted (`signal` names it) for the loop to stop after its
    step; a second one stops the process at once (its default action). A signal noted but not acted on
    (it came after the last step) is passed on when the block ends without an exception. `time_limit` seconds from now,
    `due(margin)` says the time is up once less than `margin` seconds are left."""

    def __init__(self, time_limit: float | None = None) -> None:
        self.signal: signal.Signals | None = None
        self.deadline = time.monotonic() + time_limit if time_limit else None
        self._previous: dict = {}
        self._tick, self._longest = time.monotonic(), 0.0

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, exc_type, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        # a signal the run did not stop for (it came during the last step or after) is deferred, not
        # lost: what would have handled it gets it now, so that a caller's next run does not start
        if self.signal is not None and exc_type is None and self._previous:
            self._pass_on(self.signal, None)

    def _handle(self, signum: int, frame) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)
            return
        self._pass_on(signum, frame)  # the second signal: what it would have done without us

    def _pass_on(self, signum: int, frame) -> None:
        """Do what `signum` would have done without this StopRequest (KeyboardInterrupt for SIGINT)."""
        previous = self._previous.get(signum, signal.SIG_DFL)
        if signum == signal.SIGINT and previous in (signal.SIG_DFL, None):
            previous = signal.default_int_handler
        signal.signal(signum, previous)
        if callable(previous):
            previous(signum, frame)
        else:
            signal.raise_signal(signum)

    def step_done(self, checkpoint_seconds: float) -> bool:
        """Called after each step (with its evaluation, if any): whether to stop now. A signal came, or
        what is left of the time limit would not hold the longest step seen, a checkpoint (twice the
        longest measured) and a second to spare."""
        now = time.monotonic()
        self._longest, self._tick = max(self._longest, now - self._tick), now
        margin = self._longest + 2 * checkpoint_seconds + 1.0
        return self.signal is not None or (self.deadline is not None and now + margin >= self.deadline)

    def reason(self) -> tuple[str, int]:
        """What asked for the stop, and the exit code that says so."""
        if self.signal is not None:
            return self.signal.name, 128 + int(self.signal)
        return "the time limit", TIME_LIMIT_CODE
