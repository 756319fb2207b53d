"""Runs side by side, as a reproduction is judged: for each run folder the final test error (the last
evaluation, not the best one: choosing on the test set would flatter it), the mean of its last three
evaluations, the training error, how far it went, its time and the hardware of each session; and
their curves in one figure in the style of the paper's Fig. 6 (training error dashed, test error solid).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from . import run_folder
from .errors import UsageError
from .models import get_spec
from .models.resnet import PAPER_TABLE6
from .plots import error_curves
from .train.stop import format_duration

LAST = 3  # evaluations averaged: the end of a curve, less the noise of one evaluation


@dataclass
class Compared:
    """One run folder's row of the comparison; errors are fractions, `seconds` the training time of the
    sessions recorded in sessions.jsonl, which cover the steps after `timed_from` (0: all of them)."""

    run: str
    folder: str
    model: str
    recipe: str
    data: str
    step: int
    total: int  # the iterations the run is set to (0 when it is set in epochs)
    split: str  # test, or val for data without a test split
    final_error: float
    last_mean_error: float
    train_error: float
    seconds: float
    timed_from: int
    sessions: list[dict]
    paper_error: float | None = None  # the paper's Table 6 figure, for a CIFAR ResNet trained with cifar-paper

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.step >= self.total


def summarize(folder: str | Path, at: int | None = None) -> Compared:
    """The comparison row of the run in `folder` (UsageError, naming it, for a folder without a run
    or without an evaluation yet): at its last evaluation, or with `at`, at its last evaluation at or
    before that step, with the time and sessions up to there."""
    folder = Path(folder)
    try:
        config = run_folder.read_config(folder)
    except yaml.YAMLError:
        raise UsageError(f"{folder / run_folder.CONFIG}: damaged (not YAML)") from None
    if config is None:
        raise UsageError(f"{folder}: not a run folder (no {run_folder.CONFIG})")
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict) or "model" not in config:
        kind = f"its {run_folder.CONFIG} is of another kind of run"
        raise UsageError(f"{folder}: not a run of resnet train or finetune ({kind})")
    rows = [row for row in run_folder.read(folder) if {"step", "train_error"} <= row.keys()]
    split = "test" if rows and "test_error" in rows[-1] else "val"
    rows = [row for row in rows if f"{split}_error" in row]
    if not rows:
        raise UsageError(f"{folder}: the run has not been evaluated yet (no rows in {run_folder.METRICS})")
    if at is not None:
        rows = [row for row in rows if row["step"] <= at]
        if not rows:
            raise UsageError(f"{folder}: no evaluation at or before step {at:,}")
    sessions = run_folder.sessions(folder, until=None if at is None else rows[-1]["step"])
    errors = [row[f"{split}_error"] for row in rows[-LAST:]]
    return Compared(
        run=folder.name,
        folder=str(folder),
        model=config["model"],
        recipe=str(config.get("recipe")),
        data=Path(str(config["data"]["source"] or "embedded")).name,
        step=rows[-1]["step"],
        total=int(config.get("iters") or 0),
        split=split,
        final_error=errors[-1],
        last_mean_error=sum(errors) / len(errors),
        train_error=rows[-1]["train_error"],
        seconds=sum(s["seconds"] for s in sessions),
        timed_from=min((s["from"] for s in sessions), default=rows[-1]["step"]),
        sessions=sessions,
        paper_error=paper_error(config["model"], str(config.get("recipe")), config.get("model_options") or {}),
    )


def paper_error(model: str, recipe: str, options: dict) -> float | None:
    """The paper's CIFAR-10 test error (Table 6, a fraction) of `model` trained with `recipe`: given for
    the CIFAR ResNets as the paper has them (no model options) under its own recipe, cifar-paper; None
    for any other network, option or recipe."""
    spec = get_spec(model)
    if recipe != "cifar-paper" or options or spec.family != "cifar" or not model.startswith("resnet"):
        return None
    return PAPER_TABLE6[spec.depth] / 100 if spec.depth in PAPER_TABLE6 else None


def compare(folders: list[str | Path], at: int | str | None = None) -> list[Compared]:
    """The rows of the runs in `folders`, each at its last evaluation; with `at` (a step), each at its
    last evaluation up to that step, and with at="common" at the last step that every run has reached:
    runs of unequal length compared at matched iterations."""
    if at == "common":
        at = min(summarize(folder).step for folder in folders)
    return [summarize(folder, at) for folder in folders]


def as_dicts(rows: list[Compared]) -> list[dict]:
    return [{**asdict(row), "finished": row.finished} for row in rows]


def hours(row: Compared) -> str:
    """The training time, said with what it covers: "3h06m", or "≥ 2h01m (timed from step 19,587)"."""
    if not row.sessions:
        return "not recorded"
    text = format_duration(row.seconds)
    return text if row.timed_from == 0 else f"≥ {text} (timed from step {row.timed_from:,})"


def stretches(row: Compared) -> list[str]:
    """Which steps ran on which hardware and in which precision, one line per run of like sessions."""
    merged: list[list] = []
    for s in row.sessions:
        processes = f" × {s['world']} processes" if s.get("world", 1) > 1 else ""
        where = f"{s['hardware']}{processes}, {s['precision']}"
        if merged and merged[-1][0] == where and merged[-1][2] == s["from"]:
            merged[-1][2] = s["step"]
        else:
            merged.append([where, s["from"], s["step"]])
    return [f"{first:,} – {last:,}: {where}" for where, first, last in merged]


def header(rows: list[Compared]) -> list[str]:
    split = rows[0].split if rows else "test"
    return [
        "run",
        "model",
        "iterations",
        f"{split} error (last evaluation)",
        f"mean of the last {LAST}",
        "training error",
        "training time",
        "hardware and precision, by iterations",
        "paper (Table 6)",
    ]


def cells(row: Compared) -> list[str]:
    """The row's columns of `header`, as text."""
    reached = f"{row.step:,} of {row.total:,}" if row.total else f"{row.step:,}"
    errors = (f"{e:.2%}" for e in (row.final_error, row.last_mean_error, row.train_error))
    paper = f"{row.paper_error:.2%}" if row.paper_error is not None else "–"
    return [row.run, row.model, reached, *errors, hours(row), "; ".join(stretches(row)) or "not recorded", paper]


def markdown(rows: list[Compared]) -> str:
    """The comparison as a Markdown table."""
    lines = [header(rows), ["---"] * len(header(rows)), *map(cells, rows)]
    return "".join(f"| {' | '.join(line)} |\n" for line in lines)


def plot(rows: list[Compared], path: str | Path, title: str = "") -> Path:
    """The error curves of the compared runs in one panel (Fig. 6's style), written to `path` as a PNG;
    the error axis ends at 2.5× the largest final error, as the paper's ends at 20%, so that the ends
    are told apart."""
    models = [r.model for r in rows]
    runs = {}
    for r in rows:  # each curve ends at its row's evaluation: that of the step runs are compared at
        kept = [x for x in run_folder.read(Path(r.folder)) if x.get("step", 0) <= r.step]
        runs[r.model if models.count(r.model) == 1 else r.run] = kept
    split = rows[0].split
    ax = error_curves(runs, eval_key=f"{split}_error", title=title or f"training error (dashed), {split} error (solid)")
    ax.set_ylim(0, min(100, 250 * max(r.last_mean_error for r in rows)))
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=120)
    return Path(path)
