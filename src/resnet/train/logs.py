"""What a run writes into its folder beside the checkpoints, from its main process: a row per
evaluation in metrics.jsonl (and TensorBoard's event files), diagnostics.jsonl, and at the end
curves.png and summary.json; and the RunResult that `resnet.train` returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .. import run_folder
from ..config import TrainConfig
from ..errors import UsageError
from .diagnostics import gradient_norms, layer_responses


@dataclass
class RunResult:
    """What a finished run reports: its folder, final test metrics and where the plot is."""

    out: Path
    split: str  # the split of the final error: test, or val when the data has no test split
    test_error: float
    test_top5_error: float
    best_error: float
    steps: int
    seconds: float
    plot: Path
    rank: int = 0  # the process of a distributed run that returned this (rank 0 reports)
    finished: bool = True  # False when paused by stop_after
    skipped_images: int = (
        0  # unreadable images left out (data.skip_bad_images): the count in summary.json, listed in skipped-images.txt
    )

    @property
    def test_accuracy(self) -> float:
        return 1 - self.test_error


class RunLogs:
    """The logs of the run of `config` in `out`, written when `main` (the main process)."""

    def __init__(self, out: Path, config: TrainConfig, main: bool) -> None:
        self.out, self.config, self.main = out, config, main
        self._writer = None
        if config.log.tensorboard:
            tensorboard_writer()  # a missing package stops the run before it starts

    def metrics(self, row: dict) -> None:
        """Append an evaluation's row to metrics.jsonl (and to TensorBoard's event files)."""
        if not self.main:
            return
        run_folder.append(self.out, row)
        if self.config.log.tensorboard:
            if self._writer is None:
                self._writer = tensorboard_writer()(self.out / "tensorboard")
            for key, value in row.items():
                if key != "step":
                    self._writer.add_scalar(key, value, row["step"])
            self._writer.flush()

    def diagnostics(self, step: int, model: nn.Module, train_loader, eval_loaders: dict, batch: int) -> None:
        """Append the gradient norm of every layer (on a fixed training batch of `batch` images) and the
        response std of every 3×3 layer (on a fixed batch of the first evaluated split) to diagnostics.jsonl."""
        if not self.main:
            return
        train_x, train_y = next(train_loader.eval_batches(batch))
        eval_x, _ = next(next(iter(eval_loaders.values())).eval_batches(batch))
        grads = gradient_norms(model, train_x, train_y)
        responses = layer_responses(model, eval_x)
        row = {
            "step": step,
            "gradient_norms": {g.name: g.value for g in grads},
            "response_std": {r.name: r.value for r in responses},
        }
        run_folder.append(self.out, row, run_folder.DIAGNOSTICS)

    def finish(self, rows: list[dict], summary: dict, split: str, rank: int, finished: bool) -> RunResult:
        """The result of a session of the run, whose metrics `rows` and `summary` (its final row among
        it) are given: the main process draws curves.png and, when the run is finished, writes summary.json."""
        eval_key, plot, final = f"{split}_error", self.out / "curves.png", summary["final"]
        if self.main:
            from ..plots import error_curves  # matplotlib: loaded by the first run that draws, not at start-up

            title = f"{self.config.model}, {self.config.recipe}: training (dashed), {split} (solid)"
            error_curves({self.config.model: rows}, plot, eval_key=eval_key, title=title)
            if finished:  # a finished run, and only a finished one, has a summary
                run_folder.write_summary(self.out, summary)
        return RunResult(
            self.out,
            split,
            final.get(eval_key, math.nan),
            final.get(f"{split}_top5_error", math.nan),
            summary["best_error"],
            summary["steps"],
            summary["seconds"],
            plot,
            rank,
            finished,
            summary["skipped_images"],
        )


def tensorboard_writer():
    """TensorBoard's SummaryWriter class; UsageError if the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError("log.tensorboard=true needs the tensorboard package (pip install tensorboard)") from None
    return SummaryWriter
