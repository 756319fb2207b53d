"""Degradation: plain nets against ResNets of each depth on CIFAR-10 (the paper's Fig. 6, Table 6 and
Fig. 7), with the gradient that reaches each layer."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...models import describe
from ...models.resnet import PAPER_TABLE6
from ...plots import cycle, figure
from ..driver import Experiment, Job, Run, Runs, Settings
from ..figures import save, side_by_side
from ..presets import CPU_SCHEDULE, QUICK, Preset
from ..report import Finding, Table

KINDS = (("plain", "--"), ("ResNet", "-"))  # each kind's name in legends and its line style


class Degradation(Experiment):
    """Plain nets against ResNets of `depths` (with `add` beside them). With several `seeds` the
    ResNets train once per seed (the plain nets, whose finding has a wide margin, with the first), and
    the deeper ResNet counts as better only when all its seeds beat all the shallower one's."""

    name = "degradation"
    presets = {
        "cpu": Preset(
            "plain and ResNet 20 and 44, 3,500 iterations of cifar-paper with a cosine schedule, the ResNets "
            "with seeds 1 and 2: under 2 hours on 2 cores with native bf16",
            iters=3500,
            sizes={"depths": (20, 44), "seeds": (1, 2)},
            overrides=CPU_SCHEDULE,
        ),
    }
    quick = replace(QUICK, sizes={"depths": (20, 32)})

    def __init__(self, settings: Settings, depths=None, seeds=None, add=()) -> None:
        super().__init__(settings)
        self.depths = sorted({*(depths or (20, 32, 44, 56)), *add})
        self.seeds = list(seeds or [None])
        self.plain = {d: self._job("plain", d, self.seeds[0]) for d in self.depths}
        self.resnet = {d: [self._job("resnet", d, seed) for seed in self.seeds] for d in self.depths}  # by seed
        self.pairs = {d: (self.plain[d], self.resnet[d][0]) for d in self.depths}  # plain and ResNet, first seed

    def _job(self, kind: str, depth: int, seed: int | None) -> Job:
        label = f"{kind}{depth}" if seed == self.seeds[0] else f"{kind}{depth}-seed{seed}"
        return Job(label, f"{kind}{depth}", {} if seed is None else {"seed": seed})

    def jobs(self) -> list[Job]:
        return [job for d in self.depths for job in (self.plain[d], *self.resnet[d])]

    def title(self) -> str:
        return "Degradation: plain networks against ResNets on CIFAR-10"

    def intro(self) -> str:
        return f"Plain and residual networks of {', '.join(map(str, self.depths))} layers {self.settings.trained()}."

    def command(self) -> str:
        return f"resnet reproduce degradation --depths {' '.join(map(str, self.depths))}"

    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]:
        curves, responses, gradients = (
            folder / f"{n}.png" for n in ("fig6_training_curves", "fig7_layer_responses", "gradient_flow")
        )
        panels = {name: {} for name, _ in KINDS}
        for d, pair in self.pairs.items():
            for job, (name, _) in zip(pair, KINDS):
                panels[name][f"{name}-{d}"] = runs[job].rows
        side_by_side(panels, curves)
        self._responses_figure(runs, responses)
        self._gradient_figure(runs, gradients)
        return [
            ("Fig. 6: training on CIFAR-10. Dashed: training error; solid: test error.", curves),
            (
                "Fig. 7: standard deviation of the 3×3 layers' responses (after BN, before addition and ReLU); "
                "top: in layer order, bottom: sorted by magnitude.",
                responses,
            ),
            (
                f"Gradient flow in the {self.depths[-1]}-layer nets: gradient norm at each layer's weights, at "
                "initialization and during training.",
                gradients,
            ),
        ]

    def tables(self, runs: Runs) -> list[Table]:
        by_seed = len(self.seeds) > 1
        table6 = Table(
            "Table 6: CIFAR-10 error (%) by depth",
            ["layers", "params", "plain train", "plain test", "ResNet train", "ResNet test"]
            + (["ResNet test by seed"] if by_seed else [])
            + ["paper ResNet test"],
            [self._table6_row(runs, d, by_seed) for d in self.depths],
            "Errors are the mean of the last three evaluations"
            + (f"; the ResNets' are the mean over seeds {', '.join(map(str, self.seeds))}" if by_seed else "")
            + f". These networks trained on {self.settings.data or 'the embedded 5,000-image subset'}; the paper's "
            "figures are on the original CIFAR-10 binaries (the JPEG copy, cifar10-jpeg.tar.gz, scores about 3 "
            "points lower).",
        )
        grads = Table(
            "Gradient reaching the first and the last layer (L2 norm of the weight gradient)",
            ["model", "step", "first conv", "last conv", "first / last"],
            [
                [job.label, r["step"], *_first_last(r["gradient_norms"])]
                for job in self.pairs[self.depths[-1]]
                for r in _spread(runs[job].diagnostics, 3)
            ],
        )
        return [table6, grads]

    def _table6_row(self, runs: Runs, depth: int, by_seed: bool) -> list:
        plain, resnet = runs[self.plain[depth]], [runs[job] for job in self.resnet[depth]]
        return (
            [
                depth,
                f"{describe(f'resnet{depth}')['params'] / 1e6:.2f}M",
                plain.final("train_error"),
                plain.final("test_error"),
                float(np.mean([r.final("train_error") for r in resnet])),
                float(np.mean([r.final("test_error") for r in resnet])),
            ]
            + ([", ".join(f"{r.final('test_error'):.2f}" for r in resnet)] if by_seed else [])
            + [PAPER_TABLE6.get(depth, math.nan)]
        )

    def findings(self, runs: Runs) -> list[Finding]:
        if len(self.depths) < 2:
            return []
        lo, hi = self.depths[0], self.depths[-1]
        plain_lo, plain_hi = (runs[self.plain[d]].final("train_error") for d in (lo, hi))
        findings = [
            Finding(
                plain_hi > plain_lo,
                f"the deeper plain net has the higher training error: plain-{hi} {plain_hi:.2f}% "
                f"against plain-{lo} {plain_lo:.2f}%",
            ),
            self._deeper_resnet_finding(runs, lo, hi),
        ]
        for d, (plain, resnet) in self.pairs.items():
            plain_std, resnet_std = _mean_response(runs[plain]), _mean_response(runs[resnet])
            findings.append(
                Finding(
                    resnet_std < plain_std,
                    f"{d} layers: ResNet responses are smaller than the plain net's "
                    f"(mean std {resnet_std:.3f} against {plain_std:.3f})",
                )
            )
        return findings

    def _deeper_resnet_finding(self, runs: Runs, lo: int, hi: int) -> Finding:
        res_lo, res_hi = ([runs[job].final("test_error") for job in self.resnet[d]] for d in (lo, hi))
        if len(res_lo) > 1:  # every seed of the deeper net below every seed of the shallower one
            better = max(res_hi) < min(res_lo)
            numbers = (
                f"ResNet-{hi} {np.mean(res_hi):.2f}% ({_range(res_hi)}) against ResNet-{lo} "
                f"{np.mean(res_lo):.2f}% ({_range(res_lo)}), means of {len(res_lo)} seeds"
            )
        else:
            better, numbers = (
                res_hi[0] < res_lo[0],
                f"ResNet-{hi} {res_hi[0]:.2f}% against ResNet-{lo} {res_lo[0]:.2f}%",
            )
        return Finding(better, f"the deeper ResNet has the lower test error: {numbers}")

    def _responses_figure(self, runs: Runs, path: Path) -> None:
        fig = figure(figsize=(8, 7))
        top, bottom = fig.subplots(2, 1)
        colors = cycle()
        for i, (d, pair) in enumerate(self.pairs.items()):
            for job, (name, style) in zip(pair, KINDS):
                if not runs[job].diagnostics:
                    continue
                stds = list(runs[job].diagnostics[-1]["response_std"].values())
                x = np.arange(1, len(stds) + 1)
                top.plot(x, stds, style, color=colors[i % len(colors)], label=f"{name}-{d}", linewidth=1.2)
                bottom.plot(x, sorted(stds, reverse=True), style, color=colors[i % len(colors)], linewidth=1.2)
        top.set(xlabel="layer index (original)", ylabel="std")
        bottom.set(xlabel="layer index (sorted by magnitude)", ylabel="std")
        if top.get_legend_handles_labels()[0]:  # runs without diagnostics draw nothing to label
            top.legend(fontsize=8, ncol=2)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        save(fig, path)

    def _gradient_figure(self, runs: Runs, path: Path) -> None:
        depth = self.depths[-1]
        fig = figure(figsize=(11, 4))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, job, (name, _) in zip(axes, self.pairs[depth], KINDS):
            for r in _spread(runs[job].diagnostics, 4):
                norms = list(r["gradient_norms"].values())
                ax.semilogy(np.arange(1, len(norms) + 1), norms, label=f"step {r['step']}", linewidth=1.2)
            ax.set(title=f"{name}-{depth}", xlabel="layer (input → output)")
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        axes[0].set_ylabel("‖∂loss/∂W‖")
        save(fig, path)


def _range(values: list[float]) -> str:
    return f"seeds from {min(values):.2f} to {max(values):.2f}"


def _mean_response(run: Run) -> float:
    return float(np.mean(list(run.diagnostics[-1]["response_std"].values()))) if run.diagnostics else math.nan


def _spread(rows: list[dict], n: int) -> list[dict]:
    """`n` rows spread over the run: the first, the last and evenly between."""
    if len(rows) <= n:
        return rows
    return [rows[i] for i in sorted(set(np.linspace(0, len(rows) - 1, n).round().astype(int)))]


def _first_last(norms: dict) -> list:
    convs = [v for k, v in norms.items() if k != "fc"]
    return [convs[0], convs[-1], convs[0] / convs[-1] if convs[-1] else math.nan]
