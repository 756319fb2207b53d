"""The run folder, one protocol for every kind of run (`resnet train`, `resnet superres train`, the
reproductions): `config.yaml` (the resolved config), `metrics.jsonl` (one JSON row per evaluation, with
its "step"), `sessions.jsonl` (a row at each checkpoint: the session of training it ends, on which
hardware and in which precision), `last.pt` and `best.pt` (checkpoints), `summary.json` (written once a
run has finished), and `skipped-images.txt` (the unreadable images left out by data.skip_bad_images,
one path a line).

A folder holding a `last.pt` or a `summary.json` holds a run: a new run refuses it unless forced; `resume`
continues it from last.pt (a finished run may keep only its logs, summary and final weights).
Rows are appended before the checkpoint that follows them, so a resumed run drops the rows newer than
its checkpoint; a reader ignores a half-written last row.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import groupby
from pathlib import Path

import yaml

from . import checkpoint
from .errors import UsageError

RUNS = Path("runs")  # where a run goes without --out
CONFIG, METRICS, DIAGNOSTICS, SUMMARY = "config.yaml", "metrics.jsonl", "diagnostics.jsonl", "summary.json"
SESSIONS = "sessions.jsonl"
SESSION_KEYS = {"step", "from", "started", "seconds", "hardware", "precision"}  # what every row of it has
SKIPPED = "skipped-images.txt"
LOCK = ".lock"  # held by the process writing the folder
LAST, BEST = "last.pt", "best.pt"


def new(out: str | Path | None, name: str, force: bool = False) -> Path:
    """The folder of a new run: `out`, or runs/NAME-YYYYmmdd-HHMMSS when None. UsageError if it already
    holds a run, unless `force` (the old run is then replaced as the new one writes its files)."""
    folder = RUNS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}" if out is None else Path(out)
    if started(folder) and not force:
        resumable = "--resume continues it, " if (folder / LAST).exists() else ""
        raise UsageError(f"{folder} already holds a run: {resumable}--force replaces it")
    return folder


def resume(out: str | Path | None) -> tuple[Path, dict]:
    """The folder of the run to continue and its last checkpoint; UsageError without `out` or for a
    missing or damaged last.pt."""
    if out is None:
        raise UsageError("--resume needs --out, the folder of the run to continue")
    folder = Path(out)
    if finished(folder) and not (folder / LAST).exists():
        raise UsageError(f"{folder}: the run has finished and keeps no {LAST} to continue from")
    return folder, checkpoint.load(folder / LAST)


@contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Hold `folder` for one writing process: UsageError if another one holds it. The lock is the
    kernel's (flock on LOCK), so a run killed in any way leaves nothing that blocks the next one."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise UsageError(
                f"{folder} is in use by another run ({holder}); wait for it or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def started(folder: Path) -> bool:
    """Whether `folder` holds a run (finished or not): a checkpoint to continue from, or the summary
    of a finished run that kept no checkpoint."""
    return (folder / LAST).exists() or finished(folder)


def finished(folder: Path) -> bool:
    """Whether the run in `folder` has finished: only a finished run has a summary."""
    return (folder / SUMMARY).exists()


def prepare(folder: Path, config: dict, step: int, logs: tuple[str, ...] = (METRICS,)) -> None:
    """Create `folder`, write `config` to config.yaml and keep in each of `logs` the rows up to `step`,
    where the run starts: rows an interrupted process wrote after its checkpoint are dropped, and a run
    starting at step 0 (measured again there) starts with none."""
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / CONFIG, yaml.safe_dump(config, sort_keys=False))
    for log in logs:
        rows = [row for row in read(folder, log) if isinstance(row.get("step"), int) and row["step"] <= step]
        rows = rows if step else []
        _write(folder / log, "".join(json.dumps(row) + "\n" for row in rows))


def append(folder: Path, row: dict, log: str = METRICS) -> None:
    """Add `row` to the log `log` of `folder` (a kill mid-write leaves a half line that `read` ignores)."""
    with open(folder / log, "a") as f:
        f.write(json.dumps(row) + "\n")


def read(folder: Path, log: str = METRICS) -> list[dict]:
    """The rows (JSON objects) of the log `log` of `folder`: none if it is missing. A line that is no
    row is left out, the rest kept: a half-written last line (a run killed while appending), or a
    line damaged since."""
    path = folder / log
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def sessions(folder: Path, until: int | None = None) -> list[dict]:
    """The sessions that trained the run in `folder`, in order: for each, the last row its checkpoints
    wrote (steps `from` to `step`, `seconds`, `hardware`, `precision`, ...); sessions that trained no
    step are left out. A run carried from machine to machine says here which stretch ran where.

    With `until`, the sessions up to that step: one that went past it ends at its last row there, or,
    without one, at `until` with its seconds in proportion to the steps."""
    rows = [row for row in read(folder, SESSIONS) if SESSION_KEYS <= row.keys()]
    # a session's rows are consecutive; two short sessions may start within the same second
    groups = [list(group) for _, group in groupby(rows, key=lambda row: (row["from"], row["started"]))]
    return [row for row in map(partial(_session_until, until=until), groups) if row and row["step"] > row["from"]]


def _session_until(rows: list[dict], until: int | None) -> dict | None:
    """The row that ends a session's `rows` at step `until` (None: at their end)."""
    last = rows[-1]
    if until is None or last["step"] <= until:
        return last
    before = [row for row in rows if row["step"] <= until]
    if before and before[-1]["step"] > last["from"]:
        return before[-1]
    if last["from"] >= until:
        return None
    share = (until - last["from"]) / (last["step"] - last["from"])
    return {**last, "step": until, "seconds": last["seconds"] * share}


def read_config(folder: Path) -> dict | None:
    """The config in `folder`'s config.yaml, or None if it has none."""
    path = folder / CONFIG
    return yaml.safe_load(path.read_text()) if path.exists() else None


def read_skipped(folder: Path) -> list[str]:
    """The paths listed in `folder`'s skipped-images.txt (none without it)."""
    path = folder / SKIPPED
    return path.read_text().splitlines() if path.exists() else []


def write_skipped(folder: Path, paths: list[str]) -> None:
    """List `paths`, the unreadable images the run left out, in skipped-images.txt (none: no file)."""
    if paths:
        _write(folder / SKIPPED, "".join(f"{path}\n" for path in paths))
    else:  # a run that replaces one with skipped images leaves no stale list
        (folder / SKIPPED).unlink(missing_ok=True)


def write_summary(folder: Path, summary: dict) -> None:
    """Write summary.json, atomically: it marks the run finished, so it is never seen half-written."""
    _write(folder / SUMMARY, json.dumps(summary, indent=2))


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a temporary file beside it, flushed to disk, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
