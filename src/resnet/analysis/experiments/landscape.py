"""The loss landscape of a ResNet against the same network without shortcuts (Li et al. 2018, Fig. 5):
the training loss along one and two filter-normalized random directions, and its sharpness (the top
eigenvalue and the trace of the Hessian, as PyHessian measures them)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ... import run_folder
from ...data.dataset import sample
from ...data.loader import make_loader
from ...data.sources import load_data
from ...errors import UsageError
from ...files import write_together
from ...inference import load
from ...plots import figure
from ..driver import Experiment, Job, Runs, Settings
from ..figures import save
from ..loss_surface import convex_along, filter_normalized, grid, surface
from ..presets import QUICK, SHORT_ITERS, SHORT_SCHEDULE, Preset
from ..report import Finding, Table
from ..sharpness import hessian_trace, top_eigenvalue, training_loss

# Li et al. 2018, Fig. 5: CIFAR-10 test error (%) of ResNet-56 and ResNet-56-noshort (their option-B nets).
PAPER_ERROR = {"ResNet": 5.89, "plain": 13.31}
LEVELS = np.arange(0.1, 10, 0.5)  # the contour levels of Li et al.'s plots
SEEDS = (1, 2)  # of the x and y directions
SPAN = 1.0  # coordinates from -SPAN to SPAN, as in the paper
BATCH = 256  # images per forward pass; the first batch is the Hessian's
# the shortcut options, as the intro names them (Li et al.'s ResNet-56 projects where the shape changes: B)
SHORTCUTS = {
    "A": "option A: identity shortcuts, zero-padded where the shape changes",
    "B": "option B: projection shortcuts where the shape changes, as Li et al.'s",
    "C": "option C: projection shortcuts everywhere",
}
POWER_ITERATIONS = 20  # at most, each a Hessian-vector product; stopping at a relative change of 1e-3


class Landscape(Experiment):
    """ResNet-`depth` (`shortcut` option B, as Li et al.'s, by default) and plain-`depth`: the loss on
    `images` training images (drawn evenly from the classes, seed 0) at `steps` points along one
    direction and `steps`² on a plane, and the Hessian's top eigenvalue and trace (`samples` Hutchinson
    vectors) on the first BATCH of them."""

    name = "landscape"
    diagnostics = False
    presets = {
        "cpu": Preset(
            "ResNet-56 (option A) and plain-56 of the lesion cpu preset (1,000 iterations, cosine: --networks "
            "shares them), an 11×11 grid on 512 images",
            iters=SHORT_ITERS,
            sizes={"depth": 56, "shortcut": "A", "steps": 11, "images": 512, "samples": 20},
            overrides=SHORT_SCHEDULE,
        ),
        "paper": Preset(
            "Li et al.'s protocol: ResNet-56 and plain-56, a 51×51 grid on all 50,000 training images",
            sizes={"depth": 56, "shortcut": "B", "steps": 51, "images": 50_000, "samples": 100},
        ),
    }
    quick = replace(QUICK, sizes={"depth": 20, "steps": 5, "images": 128, "samples": 5})

    def __init__(
        self, settings: Settings, depth=None, steps=None, images=None, samples=None, weights=None, shortcut=None
    ) -> None:
        super().__init__(settings)
        self.depth, self.steps, self.shortcut = depth or 56, steps or 11, shortcut or "B"
        self.images, self.samples = images or 512, samples or 20
        if self.steps < 3 or self.steps % 2 == 0:
            raise UsageError(f"--steps must be odd and at least 3 (the weights at the middle point), not {self.steps}")
        if self.shortcut not in SHORTCUTS:
            raise UsageError(f"--shortcut {self.shortcut}: the options are {', '.join(SHORTCUTS)}")
        d, option = self.depth, self.shortcut
        self.nets = {  # option A is the CIFAR nets' own: the same job as the other reproductions'
            "ResNet": Job(f"resnet{d}", f"resnet{d}")
            if option == "A"
            else Job(f"resnet{d}-{option}", f"resnet{d}", {"model_options": {"shortcut": option}}),
            "plain": Job(f"plain{d}", f"plain{d}"),
        }  # by kind
        if weights and len(weights) != 2:
            raise UsageError(f"weights: two checkpoints, the ResNet's and the plain net's, not {len(weights)}")
        # checkpoints of `resnet train` (ResNet, plain) measured in place of trained jobs
        self.weights = dict(zip(self.nets, map(Path, weights or ())))
        for path in self.weights.values():
            if not path.is_file():
                raise UsageError(f"{path}: no such checkpoint")
        self.measured: dict[str, dict] = {}  # by kind: what `_measure` found, once per report

    def jobs(self) -> list[Job]:
        return [] if self.weights else list(self.nets.values())

    def title(self) -> str:
        return f"Loss landscape and sharpness: ResNet-{self.depth} against plain-{self.depth}"

    def intro(self) -> str:
        return (
            f"ResNet-{self.depth} ({SHORTCUTS[self.shortcut]}) and the same network without "
            f"shortcuts, {self._networks()}. The training loss (cross-entropy, BatchNorm in eval mode, no "
            f"augmentation) on {self.images} training images drawn evenly from the classes (seed 0), "
            f"at {self.steps} points along one "
            f"filter-normalized random direction and {self.steps}×{self.steps} points on a plane of two, "
            f"coordinates from -{SPAN} to {SPAN} (Li et al. 2018: 51×51 on all 50,000 images); the Hessian's top "
            f"eigenvalue (power iteration, at most {POWER_ITERATIONS} steps) and trace (Hutchinson, "
            f"{self.samples} vectors) of the loss on the first "
            f"{min(self.images, BATCH)} of them."
        )

    def _networks(self) -> str:
        """How the networks came: trained here, or the checkpoints given."""
        if not self.weights:
            return self.settings.trained()
        return "given as checkpoints (" + ", ".join(f"{k}: {p.name}" for k, p in self.weights.items()) + ")"

    def command(self) -> str:
        return (
            f"resnet reproduce landscape --depth {self.depth} --shortcut {self.shortcut} --steps {self.steps} "
            f"--images {self.images} "
            f"--samples {self.samples}"
        )

    def _measure(self, runs: Runs) -> dict[str, dict]:
        """Each network's surface and sharpness, computed once (and resumed from OUT/landscape/)."""
        for kind, job in self.nets.items():
            if kind not in self.measured:
                path = self.weights.get(kind) or runs[job].folder / run_folder.LAST
                # a given file is known by its contents: another file under the same name is measured anew
                label = f"{kind}-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}" if self.weights else job.label
                self.measured[kind] = self._measure_one(label, path)
        return self.measured

    def _measure_one(self, label: str, path: Path) -> dict:
        """The 1-D curve, the 2-D surface and the sharpness of the network at `path`, with their times."""
        classifier = load(path, device=self.settings.device or "auto")
        model, data_cfg = classifier.model, classifier.config.data
        if self.settings.data:
            data_cfg = replace(data_cfg, source=self.settings.data)
        data = load_data(data_cfg)
        data = replace(data, splits={**data.splits, "train": sample(data.splits["train"], self.images)})
        loader = make_loader(
            data, "train", data_cfg, train=False, batch_size=BATCH, device=classifier.device,
            normalize=classifier.normalize,
        )  # fmt: skip
        batches = list(loader.eval_batches())
        x, y = batches[0]  # the Hessian's batch: the first images of the sample, of every class
        directions = [filter_normalized(model, seed) for seed in SEEDS]
        folder, name = self.settings.out / "landscape", f"{label}-{self.images}images-balanced"
        start = time.monotonic()
        curve = surface(model, batches, directions[:1], grid(-SPAN, SPAN, self.steps, 1), folder / f"{name}-1d.jsonl")
        plane = surface(model, batches, directions, grid(-SPAN, SPAN, self.steps, 2), folder / f"{name}-2d.jsonl")
        seconds = time.monotonic() - start
        sharp = self._sharpness(model, x, y, folder / f"{label}-sharpness-{len(y)}images-balanced-{self.samples}.json")
        return {"curve": curve, "plane": plane, "seconds": seconds, **sharp}

    def _sharpness(self, model, images, labels, path: Path) -> dict:
        """The Hessian's top eigenvalue and trace, read from `path` if there, else computed and written there."""
        if path.exists():
            return json.loads(path.read_text())
        loss, params = training_loss(model, images, labels), list(model.parameters())
        start = time.monotonic()
        found = {
            "top_eigenvalue": top_eigenvalue(loss, params, iters=POWER_ITERATIONS, tol=1e-3, seed=0),
            "trace": hessian_trace(loss, params, samples=self.samples, seed=0),
        }
        found["sharpness_seconds"] = time.monotonic() - start
        write_together({path: lambda f: f.write(json.dumps(found).encode())})
        return found

    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]:
        measured = self._measure(runs)
        curves, contours = folder / "loss_1d.png", folder / "loss_2d_contours.png"
        fig = figure(figsize=(6, 4.2))
        ax = fig.subplots()
        for kind, m in measured.items():
            ax.plot([r["coords"][0] for r in m["curve"]], [r["loss"] for r in m["curve"]], label=kind)
        ax.set(xlabel="α (filter-normalized direction)", ylabel="training loss", title="Loss along one direction")
        ax.legend()
        save(fig, curves)
        fig = figure(figsize=(11, 4.6))
        for ax, (kind, m) in zip(fig.subplots(1, 2), measured.items()):
            axis, losses = _plane(m["plane"], self.steps)
            drawn = ax.contour(axis, axis, losses, levels=LEVELS)
            ax.clabel(drawn, inline=True, fontsize=7)
            ax.set(title=f"{kind}-{self.depth}", xlabel="x", ylabel="y", aspect="equal")
        save(fig, contours)
        return [
            ("Training loss along one filter-normalized random direction (Li et al. Fig. 5's setting, 1-D).", curves),
            ("Training loss on the plane of two filter-normalized directions; levels 0.1 to 10, step 0.5.", contours),
        ]

    def tables(self, runs: Runs) -> list[Table]:
        measured = self._measure(runs)
        rows = [
            [
                f"{kind}-{self.depth}",
                runs[self.nets[kind]].final("test_error") if self.nets[kind] in runs else math.nan,
                PAPER_ERROR[kind],
                m["curve"][self.steps // 2]["loss"],
                m["top_eigenvalue"],
                m["trace"],
                f"{m['seconds']:.0f} s",
            ]
            for kind, m in measured.items()
        ]
        header = ["network", "test error", "paper (56 layers)", "loss at the weights", "top eigenvalue", "trace"]
        note = (
            f"Test error: the mean of the last three evaluations of the run (%). Surface time: computing the "
            f"{self.steps + self.steps**2} losses in this call, on {self.settings.device or 'auto'} (points an "
            f"earlier call wrote are read, in no time); the Hessian measures took "
            f"{sum(m['sharpness_seconds'] for m in measured.values()):.0f} s when computed."
        )
        return [Table("The networks, their loss and sharpness", [*header, "surface time"], rows, note)]

    def findings(self, runs: Runs) -> list[Finding]:
        m = self._measure(runs)
        resnet, plain = m["ResNet"], m["plain"]
        axes = _axes(resnet["plane"], self.steps)
        convex = all(convex_along(line) for line in axes)
        low = {kind: _share_below(v["plane"], v["curve"][self.steps // 2]["loss"] + 1.0) for kind, v in m.items()}
        return [
            Finding(
                plain["top_eigenvalue"] > resnet["top_eigenvalue"],
                f"the plain net's top Hessian eigenvalue is larger: {plain['top_eigenvalue']:.2f} against the "
                f"ResNet's {resnet['top_eigenvalue']:.2f}",
            ),
            Finding(
                plain["trace"] > resnet["trace"],
                f"the plain net's Hessian trace is larger: {plain['trace']:.1f} against {resnet['trace']:.1f}",
            ),
            Finding(
                convex,
                "the ResNet's loss along each direction (the x and y axes of the plane) is convex within the "
                f"plotted range ({self.steps} points from -{SPAN} to {SPAN})",
            ),
            Finding(
                low["ResNet"] > low["plain"],
                f"the ResNet's basin is wider: {100 * low['ResNet']:.0f}% of the plane lies within 1.0 of the loss "
                f"at its weights, {100 * low['plain']:.0f}% for the plain net",
            ),
        ]


def _plane(rows: list[dict], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The axis values and the steps × steps losses (rows: y, columns: x) of a 2-D surface's rows."""
    losses = np.array([r["loss"] for r in rows]).reshape(steps, steps).T  # rows of `grid` vary y fastest
    return np.array(sorted({r["coords"][0] for r in rows})), losses


def _axes(rows: list[dict], steps: int) -> list[list[float]]:
    """The losses along the x axis and along the y axis of a 2-D surface (the lines through the weights)."""
    losses = _plane(rows, steps)[1]
    return [list(losses[steps // 2, :]), list(losses[:, steps // 2])]


def _share_below(rows: list[dict], level: float) -> float:
    """The fraction of a surface's points whose loss is under `level`."""
    return float(np.mean([r["loss"] < level for r in rows]))
