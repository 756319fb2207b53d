"""Shattered gradients (Balduzzi et al. 2017): the input gradient of plain nets and ResNets along a line
of inputs, at initialization and trained, and its autocorrelation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ... import run_folder
from ...data.dataset import sample
from ...data.loader import make_loader
from ...data.sources import load_data
from ...files import write_together
from ...inference import load
from ...models import create_model
from ...plots import figure
from ..driver import Experiment, Job, Runs, Settings
from ..figures import save
from ..presets import QUICK, SHORT_ITERS, SHORT_SCHEDULE, Preset
from ..report import Finding, Table
from ..shattered import POINTS, autocorrelation, calibrate_batchnorm, line_gradients, random_direction

KINDS = {"plain": "plain", "ResNet": "resnet"}  # each kind's name in the report and in the registry
STATES = ("init", "trained")
# the lines the gradient is followed along: from the first image of the sample to the second, and from
# the first along a random Gaussian direction of the same length
LINES = {"images": "to the second image", "random": "along a random direction"}
LAGS = 32  # of the autocorrelation plotted
SEED = 0  # of the initialized networks
IMAGES = 256  # training images drawn evenly from the classes: the initialized BatchNorms' statistics, the lines' ends


class Gradients(Experiment):
    """Plain nets and ResNets of `depths` (default 20 and 56): the derivative of the class score of
    one training image along the line from it to another (the first two of IMAGES drawn evenly from the
    classes; POINTS inputs), with the trained weights and with freshly initialized ones (BatchNorm
    statistics measured on the IMAGES)."""

    name = "gradients"
    diagnostics = False
    presets = {
        "cpu": Preset(
            "plain and ResNet 20 and 56, 1,000 iterations of cifar-paper with a cosine schedule (the lesion cpu "
            "preset's networks: --networks shares them)",
            iters=SHORT_ITERS,
            sizes={"depths": (20, 56)},
            overrides=SHORT_SCHEDULE,
        ),
    }
    quick = replace(QUICK, sizes={"depths": (20, 56)})

    def __init__(self, settings: Settings, depths=None) -> None:
        super().__init__(settings)
        self.depths = sorted(depths or (20, 56))
        self.nets = {(kind, d): Job(f"{name}{d}", f"{name}{d}") for d in self.depths for kind, name in KINDS.items()}
        self.measured: dict | None = None

    def jobs(self) -> list[Job]:
        return list(self.nets.values())

    def title(self) -> str:
        return "Shattered gradients: plain networks against ResNets"

    def intro(self) -> str:
        return (
            f"Plain and residual networks of {', '.join(map(str, self.depths))} layers {self.settings.trained()}, "
            f"and the same networks freshly initialized (seed {SEED}; BatchNorm statistics measured on {IMAGES} "
            f"training images drawn evenly from the classes). For each, the derivative of the class score of the "
            f"first of those images along the line from it to the second one, at {POINTS} equally spaced inputs "
            "(BatchNorm in eval mode), and its "
            "autocorrelation (Balduzzi et al. 2017: white noise in deep plain nets, correlated in ResNets)."
        )

    def command(self) -> str:
        return f"resnet reproduce gradients --depths {' '.join(map(str, self.depths))}"

    def _measure(self, runs: Runs) -> dict:
        """{(kind, depth, state, line): derivatives along the line}, read from OUT/gradients/ or computed there."""
        if self.measured is None:
            self.measured = {}
            for (kind, d), job in self.nets.items():
                for state in STATES:
                    path = self.settings.out / "gradients" / f"{job.label}-{state}-balanced.json"
                    lines = self._derivatives(runs[job].folder / run_folder.LAST, state, path)
                    self.measured.update({(kind, d, state, line): g for line, g in lines.items()})
        return self.measured

    def _derivatives(self, checkpoint: Path, state: str, path: Path) -> dict[str, np.ndarray]:
        """The derivatives of the network at `checkpoint` (`state` "init": re-initialized) along each of
        LINES, kept in `path`."""
        if path.exists():
            stored = json.loads(path.read_text())
            if set(stored) == set(LINES):
                return {line: np.array(g) for line, g in stored.items()}
        classifier = load(checkpoint, device=self.settings.device or "auto")
        data_cfg = classifier.config.data
        data = load_data(data_cfg)
        data = replace(data, splits={**data.splits, "train": sample(data.splits["train"], IMAGES)})
        loader = make_loader(
            data, "train", data_cfg, train=False, batch_size=IMAGES, device=classifier.device,
            normalize=classifier.normalize,
        )  # fmt: skip
        images, labels = next(loader.eval_batches())
        model = classifier.model
        if state == "init":
            torch.manual_seed(SEED)
            options = classifier.model_options
            model = create_model(classifier.model_name, num_classes=len(classifier.classes), **options)
            model = calibrate_batchnorm(model.to(classifier.device), images)
        a, b = images[0], images[1]
        ends = {"images": b, "random": a + random_direction(a, norm=float((b - a).norm()), seed=SEED)}
        lines = {line: line_gradients(model, a, end, output=int(labels[0])) for line, end in ends.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({line: g.tolist() for line, g in lines.items()}).encode()
        write_together({path: lambda f: f.write(text)})
        return lines

    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]:
        measured = self._measure(runs)
        lines, acf = folder / "gradients_along_the_line.png", folder / "gradient_autocorrelation.png"
        fig = figure(figsize=(11, 2.6 * len(self.depths) * 2))
        axes = fig.subplots(len(self.depths) * 2, 2, squeeze=False)
        for row, (d, state) in enumerate((d, s) for d in self.depths for s in STATES):
            for ax, kind in zip(axes[row], KINDS):
                g = measured[kind, d, state, "images"]
                ax.plot(np.linspace(0, 1, len(g)), g / (np.abs(g).max() or 1.0), lw=0.8)
                ax.set(title=f"{kind}-{d}, {state}", xlabel="t", ylabel="gradient / max")
        save(fig, lines)
        fig = figure(figsize=(11, 8.4))
        for ax, (line, state) in zip(fig.subplots(2, 2).flat, ((line, s) for line in LINES for s in STATES)):
            for kind, d in self.nets:
                style = "--" if kind == "plain" else "-"
                ax.plot(autocorrelation(measured[kind, d, state, line], LAGS), style, label=f"{kind}-{d}")
            ax.set(title=f"{state}, {LINES[line]}", xlabel="lag", ylabel="autocorrelation", ylim=(-0.5, 1.05))
            ax.legend()
        save(fig, acf)
        return [
            (
                f"The derivative of the class score along the line to the second image, at {POINTS} points (scaled "
                "to its maximum).",
                lines,
            ),
            (
                "Its autocorrelation by lag, along the line to the second image (top) and along a random direction "
                "(bottom): near zero beyond lag 0 is white noise (shattered).",
                acf,
            ),
        ]

    def _lag1(self, runs: Runs) -> dict:
        return {key: autocorrelation(g, 1)[1] for key, g in self._measure(runs).items()}

    def tables(self, runs: Runs) -> list[Table]:
        lag1 = self._lag1(runs)
        columns = [(s, line) for line in LINES for s in STATES]
        rows = [[f"{kind}-{d}", *(lag1[kind, d, s, line] for s, line in columns)] for (kind, d) in self.nets]
        note = "Balduzzi et al. 2017 (Fig. 4, 1-D inputs): about 0 for a deep plain net, near 1 for a ResNet."
        header = ["network", *(f"{s}, {LINES[line]}" for s, line in columns)]
        return [Table("Lag-1 autocorrelation of the gradient along the line", header, rows, note)]

    def findings(self, runs: Runs) -> list[Finding]:
        lag1 = self._lag1(runs)
        findings = [
            Finding(
                lag1["ResNet", d, s, "images"] > lag1["plain", d, s, "images"],
                f"{s}, {d} layers: the ResNet's gradient is more correlated than the plain net's "
                f"(lag-1 autocorrelation {lag1['ResNet', d, s, 'images']:.2f} against "
                f"{lag1['plain', d, s, 'images']:.2f})",
            )
            for d in self.depths
            for s in STATES
        ]
        random = [(lag1["ResNet", d, s, "random"], lag1["plain", d, s, "random"]) for d in self.depths for s in STATES]
        findings.append(
            Finding(
                all(res > plain for res, plain in random),
                "along a random direction too, at every depth and state, the ResNet's gradient is the more correlated "
                f"(lag-1, ResNet against plain: {', '.join(f'{r:.2f}/{p:.2f}' for r, p in random)})",
            )
        )
        lo, hi = self.depths[0], self.depths[-1]
        if hi > lo:
            findings.append(
                Finding(
                    lag1["plain", hi, "init", "images"] < lag1["plain", lo, "init", "images"],
                    f"at initialization the plain net's gradient decorrelates with depth: lag-1 autocorrelation "
                    f"{lag1['plain', hi, 'init', 'images']:.2f} at {hi} layers against "
                    f"{lag1['plain', lo, 'init', 'images']:.2f} at {lo}",
                )
            )
        return findings
