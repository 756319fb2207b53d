"""Residual MLPs against plain ones on feature vectors: does the degradation of deep plain networks, and
its cure by the residual connection, hold beyond convolutions?"""

from __future__ import annotations

from pathlib import Path

from ...models import describe
from ..driver import Experiment, Job, Runs, Settings
from ..figures import side_by_side
from ..report import Finding, Table

KINDS = ("plain", "residual")


class MLPDepth(Experiment):
    """Plain and residual MLPs of each number of dense `blocks` (3 layers each)."""

    name = "mlp"
    diagnostics = False  # the report draws error curves only: the runs need not measure more

    def __init__(self, settings: Settings, blocks=(1, 4, 8, 16)) -> None:
        super().__init__(settings)
        self.blocks = sorted(blocks)
        self.nets = {
            kind: {b: Job(f"{kind}_mlp-{b}", f"{kind}_mlp", {"model_options": {"blocks": b}}) for b in self.blocks}
            for kind in KINDS
        }  # by kind, then by blocks

    def jobs(self) -> list[Job]:
        return [self.nets[kind][b] for b in self.blocks for kind in KINDS]

    def title(self) -> str:
        return "Residual MLPs against plain MLPs"

    def intro(self) -> str:
        return (
            f"MLPs of {', '.join(map(str, self.blocks))} dense blocks (dense 1024, dropout, dense 512, dense 1024; "
            f"residual: added to the block's input) {self.settings.trained()}."
        )

    def command(self) -> str:
        return f"resnet reproduce mlp --blocks {' '.join(map(str, self.blocks))}"

    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]:
        path = folder / "mlp_training_curves.png"
        panels = {kind: {f"{b} blocks": runs[job].rows for b, job in nets.items()} for kind, nets in self.nets.items()}
        side_by_side(panels, path)
        return [("Training (dashed) and test (solid) error of plain and residual MLPs.", path)]

    def tables(self, runs: Runs) -> list[Table]:
        rows = [
            [b, 2 + 3 * b, f"{describe('residual_mlp', blocks=b)['params']:,}"]
            + [runs[self.nets[kind][b]].final(key) for kind in KINDS for key in ("train_error", "test_error")]
            for b in self.blocks
        ]
        return [
            Table(
                f"Error (%) by depth on {self.settings.data}",
                ["blocks", "layers", "params", "plain train", "plain test", "residual train", "residual test"],
                rows,
                "Errors are the mean of the last three evaluations; training error is measured on the training "
                "batches, with dropout active.",
            )
        ]

    def findings(self, runs: Runs) -> list[Finding]:
        lo, hi = self.blocks[0], self.blocks[-1]
        plain, res = ({b: runs[self.nets[kind][b]].final("train_error") for b in (lo, hi)} for kind in KINDS)
        return [
            Finding(
                plain[hi] > plain[lo],
                f"the deep plain MLP trains worse than the shallow one: {hi} blocks "
                f"{plain[hi]:.2f}% training error against {lo} blocks {plain[lo]:.2f}%",
            ),
            Finding(
                res[hi] < plain[hi],
                f"at {hi} blocks the residual MLP trains better than the plain one: "
                f"{res[hi]:.2f}% against {plain[hi]:.2f}% training error",
            ),
        ]
