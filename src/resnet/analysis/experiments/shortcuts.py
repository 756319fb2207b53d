"""Shortcut options A, B and C (and the plain net) at one CIFAR depth, in the spirit of the paper's
Table 3."""

from __future__ import annotations

from pathlib import Path

from ...models import describe
from ...plots import error_curves
from ..driver import Experiment, Job, Runs, Settings
from ..presets import CPU_SCHEDULE, Preset
from ..report import Finding, Table

# Table 3: ImageNet top-1 error (%, 10-crop) of 34-layer nets by shortcut option.
PAPER_TABLE3 = {"none": 28.54, "A": 25.03, "B": 24.52, "C": 24.19}


class Shortcuts(Experiment):
    """Options A (zero-padding identity), B (projections where the shape changes) and C (projections
    everywhere) against the plain net ("none") at `depth` layers."""

    name = "shortcuts"
    presets = {
        "cpu": Preset(
            "options A, B, C and plain at 20 layers, 3,500 iterations as above: about 45 minutes on 2 cores",
            iters=3500,
            sizes={"depth": 20},
            overrides={**CPU_SCHEDULE, "seed": 1},
        ),
    }

    def __init__(self, settings: Settings, depth: int | None = None) -> None:
        super().__init__(settings)
        self.depth = d = depth or 32
        resnets = {o: Job(f"resnet{d}-{o}", f"resnet{d}", {"model_options": {"shortcut": o}}) for o in "ABC"}
        self.options = {"none": Job(f"plain{d}", f"plain{d}"), **resnets}  # by shortcut option

    def jobs(self) -> list[Job]:
        return list(self.options.values())

    def title(self) -> str:
        return f"Shortcut options A, B, C at {self.depth} layers"

    def intro(self) -> str:
        return (
            f"{self.depth}-layer CIFAR networks with each shortcut option and without shortcuts, "
            f"{self.settings.trained()}."
        )

    def command(self) -> str:
        return f"resnet reproduce shortcuts --depth {self.depth}"

    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]:
        path = folder / "shortcut_curves.png"
        error_curves(
            {f"option {o}" if o != "none" else "plain": runs[job].rows for o, job in self.options.items()},
            path,
            title=f"{self.depth} layers: training (dashed), test (solid) error",
        )
        return [("Training (dashed) and test (solid) error by shortcut option.", path)]

    def tables(self, runs: Runs) -> list[Table]:
        rows = [
            [
                o,
                f"{_params(self.depth, o):,}",
                runs[job].final("train_error"),
                runs[job].final("test_error"),
                PAPER_TABLE3[o],
            ]
            for o, job in self.options.items()
        ]
        return [
            Table(
                f"Shortcut options at {self.depth} layers (CIFAR-10)",
                ["shortcut", "params", "train error", "test error", "paper Table 3 (ResNet-34, ImageNet top-1)"],
                rows,
                "A: zero-padding identity (no parameters); B: projections where the shape changes; C: projections "
                "everywhere. Errors are the mean of the last three evaluations.",
            )
        ]

    def findings(self, runs: Runs) -> list[Finding]:
        """Table 3's claims from the test errors (%) by option ("none": the plain net)."""
        errors = {o: runs[job].final("test_error") for o, job in self.options.items()}
        options = [errors[o] for o in "ABC"]
        spread = max(options) - min(options)
        little = "the three options differ little (paper: within 0.84 points), so projections are not essential"
        return [
            Finding(
                max(options) < errors["none"],
                f"every shortcut option beats the plain net: plain {errors['none']:.2f}%, A {errors['A']:.2f}%, "
                f"B {errors['B']:.2f}%, C {errors['C']:.2f}%",
            ),
            Finding(spread < 1.0, little if spread < 1.0 else f"{little}: here they span {spread:.2f} points"),
        ]


def _params(depth: int, shortcut: str) -> int:
    if shortcut == "none":
        return describe(f"plain{depth}")["params"]
    return describe(f"resnet{depth}", shortcut=shortcut)["params"]
