"""The paper's CIFAR-10 evidence, reproduced in one command: degradation of plain nets against
ResNets (Fig. 6, Table 6), layer responses (Fig. 7), gradient flow, and the shortcut options
(Table 3's question at CIFAR scale).

Every model trains in its own folder under OUT/runs/; a killed reproduction, run again, skips the
finished models and resumes the interrupted one from its checkpoint.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # not pyplot: the user's backend and open figures stay as they are

from .. import run_folder
from ..config import resolve, to_dict
from ..errors import Stopped, UsageError
from ..models import describe
from ..plots import error_curves
from ..train import train
from ..train.stop import parse_time_limit
from .report import Finding, Report, Reproduction, Table

# Table 6: CIFAR-10 test error (%) of the ResNets, on the original binaries (110: best of 5 runs).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
# Table 3: ImageNet top-1 error (%, 10-crop) of 34-layer nets by shortcut option.
PAPER_TABLE3 = {"none": 28.54, "A": 25.03, "B": 24.52, "C": 24.19}
QUICK = {"iters": 200, "depths": (20, 32), "overrides": {"log.evals": 10}}


@dataclass(frozen=True)
class Preset:
    """A named protocol of a reproduction: its length, depths, seeds and recipe changes. What a user
    passes as well (depths, iterations, --set) takes precedence."""

    description: str
    iters: int
    depths: tuple[int, ...] = ()  # degradation
    seeds: tuple[int, ...] = ()  # degradation: the ResNets train once per seed, the plain nets with the first
    depth: int | None = None  # shortcuts
    overrides: dict = field(default_factory=dict)


# `cpu`: the paper's three CIFAR findings in at most two hours on a 2-core CPU with native bf16 (the
# trials behind these choices are in docs/reproductions.md).
CPU_SCHEDULE = {"schedule.name": "cosine", "schedule.warmup": 0.05, "log.evals": 16}
PRESETS = {
    "degradation": {
        "cpu": Preset(
            "plain and ResNet 20 and 44, 3,500 iterations of cifar-paper with a cosine schedule, the ResNets "
            "with seeds 1 and 2: under 2 hours on 2 cores with native bf16",
            iters=3500,
            depths=(20, 44),
            seeds=(1, 2),
            overrides=CPU_SCHEDULE,
        ),
    },
    "shortcuts": {
        "cpu": Preset(
            "options A, B, C and plain at 20 layers, 3,500 iterations as above: about 45 minutes on 2 cores",
            iters=3500,
            depth=20,
            overrides={**CPU_SCHEDULE, "seed": 1},
        ),
    },
}


def find_preset(experiment: str, name: str | None) -> Preset | None:
    """The preset `name` of `experiment` (None: none). UsageError for an unknown one."""
    if name is None:
        return None
    known = PRESETS.get(experiment, {})
    if name not in known:
        offered = ", ".join(known) or "none"
        raise UsageError(f"reproduce {experiment} has no preset {name!r} (presets: {offered})")
    return known[name]


@dataclass
class Job:
    """One model of a reproduction: its folder name (and legend), registry name and overrides."""

    label: str
    model: str
    overrides: dict = field(default_factory=dict)


@dataclass
class Settings:
    """What every model of a reproduction shares."""

    out: Path
    data: str | None
    recipe: str = "cifar-paper"
    iters: int | None = None
    device: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True
    command: str = ""
    deadline: float | None = None  # time.monotonic() by which the reproduction stops (--time-limit)


def _settings(out, data, quick, iters, device, recipe, progress, command, overrides, time_limit) -> Settings:
    if data is None and not quick:
        raise UsageError(
            "the full reproduction trains on CIFAR-10: pass --data (e.g. cifar10-jpeg.tar.gz, or "
            "cifar10 --download); --quick uses the embedded subset"
        )
    overrides = {"log.diagnostics": True, **(QUICK["overrides"] if quick else {}), **(overrides or {})}
    iters = iters or (QUICK["iters"] if quick else None)
    limit = parse_time_limit(time_limit)  # the whole reproduction's: each model gets what is left of it
    deadline = time.monotonic() + limit if limit is not None else None
    return Settings(Path(out), data, recipe, iters, device, overrides, progress, command, deadline)


def run_jobs(jobs: list[Job], s: Settings) -> dict[str, list[dict]]:
    """Train every job not yet finished (resuming an interrupted one); returns each job's metrics rows."""
    rows = {}
    for i, job in enumerate(jobs, 1):
        folder = s.out / "runs" / job.label
        overrides = {**s.overrides, **job.overrides}
        wanted = to_dict(
            resolve(
                s.recipe,
                overrides,
                model=job.model,
                **{"data.source": s.data},
                **({"iters": s.iters, "epochs": 0} if s.iters else {}),
            )
        )
        _check_same(folder, wanted)
        finished, started = run_folder.finished(folder), run_folder.started(folder)
        if s.progress:
            state = "finished, kept" if finished else "resuming" if started else "training"
            print(f"[{i}/{len(jobs)}] {job.label}: {state} ({folder})", flush=True)
        left = None if s.deadline is None else max(1e-3, s.deadline - time.monotonic())
        try:
            if started and not finished:
                train(out=folder, resume=True, progress=s.progress, time_limit=left)
            elif not finished:
                train(
                    job.model,
                    s.data,
                    s.recipe,
                    folder,
                    overrides,
                    iters=s.iters,
                    device=s.device,
                    force=True,
                    progress=s.progress,
                    time_limit=left,
                )
        except Stopped as e:  # the reproduction, not the one run, is what the user resumes
            what = str(e).split("; resume with:")[0]
            raise Stopped(
                f"{job.label} {what}; the same `resnet reproduce` command continues it (finished models are kept)",
                e.code,
            ) from None
        rows[job.label] = run_folder.read(folder)
    return rows


def _check_same(folder: Path, wanted: dict) -> None:
    have = run_folder.read_config(folder)
    if have is None:  # nothing there yet
        return
    for key in ("model", "model_options", "recipe", "iters", "epochs", "batch_size", "seed", "data", "optimizer"):
        if have.get(key) != wanted.get(key):
            there, now = have.get(key), wanted.get(key)
            if isinstance(there, dict) and isinstance(now, dict):  # name the setting, not the section
                sub = next(k for k in {**there, **now} if there.get(k) != now.get(k))
                key, there, now = f"{key}.{sub}", there.get(sub), now.get(sub)
            raise UsageError(
                f"{folder} holds a run with other settings ({key}: {there} there, {now} now); use another --out"
            )


def _diagnostics(folder: Path) -> list[dict]:
    return run_folder.read(folder, run_folder.DIAGNOSTICS)


def _final(rows: list[dict], key: str, last: int = 3) -> float:
    """The mean of `key` over the last evaluations (the end of a run, less noisy than one point)."""
    values = [r[key] for r in rows if r.get(key) is not None][-last:]
    return 100 * float(np.mean(values)) if values else math.nan


def degradation(
    depths=None,
    data: str | None = None,
    out="reproductions/degradation",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: dict | None = None,
    time_limit: str | float | None = None,
    seeds: tuple[int, ...] | None = None,
    preset: str | None = None,
    add: tuple[int, ...] = (),
) -> Reproduction:
    """Plain nets against ResNets of each depth (default 20, 32, 44, 56): Fig. 6, Table 6, Fig. 7 and
    gradient flow; `add` puts further depths beside these (or the preset's). `overrides` change recipe
    keys of every model. With several `seeds` the ResNets
    train once per seed (the plain nets, whose finding has a wide margin, with the first), and the
    deeper ResNet counts as better only when all its seeds beat all the shallower one's. `preset`
    names a protocol of PRESETS. Returns the paths of report.html and summary.md and the findings."""
    p = find_preset("degradation", preset)
    if p is not None:
        depths, iters, seeds = depths or p.depths, iters or p.iters, seeds or p.seeds
        overrides = {**p.overrides, **(overrides or {})}
    depths = sorted({*(depths or (QUICK["depths"] if quick else (20, 32, 44, 56))), *add})
    seeds = list(seeds or [None])
    s = _settings(out, data, quick, iters, device, recipe, progress, command, overrides, time_limit)

    def job(kind: str, d: int, seed: int | None) -> Job:
        label = f"{kind}{d}" if seed == seeds[0] else f"{kind}{d}-seed{seed}"
        return Job(label, f"{kind}{d}", {} if seed is None else {"seed": seed})

    jobs = []
    for d in depths:
        jobs += [job("plain", d, seeds[0])] + [job("resnet", d, seed) for seed in seeds]
    rows = run_jobs(jobs, s)
    resnet = {d: [rows[job("resnet", d, seed).label] for seed in seeds] for d in depths}  # by seed
    figures = s.out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    diag = {job.label: _diagnostics(s.out / "runs" / job.label) for job in jobs}

    _side_by_side(
        {
            name: {f"{name}-{d}": rows[f"{kind}{d}"] for d in depths}
            for kind, name in (("plain", "plain"), ("resnet", "ResNet"))
        },
        figures / "fig6_training_curves.png",
    )
    _responses_figure(diag, depths, figures / "fig7_layer_responses.png")
    deepest = depths[-1]
    _gradient_figure(diag, deepest, figures / "gradient_flow.png")

    by_seed = len(seeds) > 1
    table6 = Table(
        "Table 6: CIFAR-10 error (%) by depth",
        ["layers", "params", "plain train", "plain test", "ResNet train", "ResNet test"]
        + (["ResNet test by seed"] if by_seed else [])
        + ["paper ResNet test"],
        [
            [
                d,
                f"{describe(f'resnet{d}')['params'] / 1e6:.2f}M",
                _final(rows[f"plain{d}"], "train_error"),
                _final(rows[f"plain{d}"], "test_error"),
                float(np.mean([_final(r, "train_error") for r in resnet[d]])),
                float(np.mean([_final(r, "test_error") for r in resnet[d]])),
            ]
            + ([", ".join(f"{_final(r, 'test_error'):.2f}" for r in resnet[d])] if by_seed else [])
            + [PAPER_TABLE6.get(d, math.nan)]
            for d in depths
        ],
        "Errors are the mean of the last three evaluations"
        + (f"; the ResNets' are the mean over seeds {', '.join(map(str, seeds))}" if by_seed else "")
        + ". The paper's figures are on the original CIFAR-10 binaries; the JPEG copy scores about 3 points lower.",
    )
    grads = Table(
        "Gradient reaching the first and the last layer (L2 norm of the weight gradient)",
        ["model", "step", "first conv", "last conv", "first / last"],
        [
            [label, r["step"], *_first_last(r["gradient_norms"])]
            for label in (f"plain{deepest}", f"resnet{deepest}")
            for r in _spread(diag[label], 3)
        ],
    )
    report = Report(
        "Degradation: plain networks against ResNets on CIFAR-10",
        f"Plain and residual networks of {', '.join(map(str, depths))} layers trained with the {recipe} recipe"
        f"{f' for {s.iters} iterations' if s.iters else ''} on {data or 'the embedded CIFAR-10 subset'}.",
        figures=[
            (
                "Fig. 6: training on CIFAR-10. Dashed: training error; solid: test error.",
                figures / "fig6_training_curves.png",
            ),
            (
                "Fig. 7: standard deviation of the 3×3 layers' responses (after BN, before addition and ReLU); "
                "top: in layer order, bottom: sorted by magnitude.",
                figures / "fig7_layer_responses.png",
            ),
            (
                f"Gradient flow in the {deepest}-layer nets: gradient norm at each layer's weights, at initialization "
                "and during training.",
                figures / "gradient_flow.png",
            ),
        ],
        tables=[table6, grads],
        findings=_degradation_findings(rows, resnet, diag, depths),
        commands=[
            s.command or f"resnet reproduce degradation --depths {' '.join(map(str, depths))}",
            *(_train_command(job, s) for job in jobs),
        ],
    )
    return report.write(s.out)


def _degradation_findings(rows, resnet, diag, depths) -> list[Finding]:
    """`resnet`: each depth's ResNet runs, one per seed."""
    if len(depths) < 2:
        return []
    lo, hi = depths[0], depths[-1]
    plain_lo, plain_hi = _final(rows[f"plain{lo}"], "train_error"), _final(rows[f"plain{hi}"], "train_error")
    res_lo, res_hi = ([_final(r, "test_error") for r in resnet[d]] for d in (lo, hi))
    if len(res_lo) > 1:  # every seed of the deeper net below every seed of the shallower one
        better = max(res_hi) < min(res_lo)
        numbers = (
            f"ResNet-{hi} {np.mean(res_hi):.2f}% ({_range(res_hi)}) against ResNet-{lo} "
            f"{np.mean(res_lo):.2f}% ({_range(res_lo)}), means of {len(res_lo)} seeds"
        )
    else:
        better, numbers = res_hi[0] < res_lo[0], f"ResNet-{hi} {res_hi[0]:.2f}% against ResNet-{lo} {res_lo[0]:.2f}%"
    findings = [
        Finding(
            plain_hi > plain_lo,
            f"the deeper plain net has the higher training error: plain-{hi} {plain_hi:.2f}% "
            f"against plain-{lo} {plain_lo:.2f}%",
        ),
        Finding(better, f"the deeper ResNet has the lower test error: {numbers}"),
    ]
    for d in depths:
        plain, res = (_mean_response(diag[f"{k}{d}"]) for k in ("plain", "resnet"))
        findings.append(
            Finding(
                res < plain,
                f"{d} layers: ResNet responses are smaller than the plain net's "
                f"(mean std {res:.3f} against {plain:.3f})",
            )
        )
    return findings


def _range(values: list[float]) -> str:
    return f"seeds from {min(values):.2f} to {max(values):.2f}"


def _mean_response(rows: list[dict]) -> float:
    return float(np.mean(list(rows[-1]["response_std"].values()))) if rows else math.nan


def _responses_figure(diag: dict, depths, path: Path) -> None:
    fig = Figure(figsize=(8, 7))
    top, bottom = fig.subplots(2, 1)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, d in enumerate(depths):
        for kind, style, name in (("plain", "--", "plain"), ("resnet", "-", "ResNet")):
            if not diag[f"{kind}{d}"]:
                continue
            stds = list(diag[f"{kind}{d}"][-1]["response_std"].values())
            x = np.arange(1, len(stds) + 1)
            top.plot(x, stds, style, color=colors[i % len(colors)], label=f"{name}-{d}", linewidth=1.2)
            bottom.plot(x, sorted(stds, reverse=True), style, color=colors[i % len(colors)], linewidth=1.2)
    top.set(xlabel="layer index (original)", ylabel="std")
    bottom.set(xlabel="layer index (sorted by magnitude)", ylabel="std")
    if top.get_legend_handles_labels()[0]:  # runs without diagnostics draw nothing to label
        top.legend(fontsize=8, ncol=2)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    _save(fig, path)


def _spread(rows: list[dict], n: int) -> list[dict]:
    """`n` rows spread over the run: the first, the last and evenly between."""
    if len(rows) <= n:
        return rows
    return [rows[i] for i in sorted(set(np.linspace(0, len(rows) - 1, n).round().astype(int)))]


def _first_last(norms: dict) -> list:
    convs = [v for k, v in norms.items() if k != "fc"]
    return [convs[0], convs[-1], convs[0] / convs[-1] if convs[-1] else math.nan]


def _gradient_figure(diag: dict, depth: int, path: Path) -> None:
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, kind, name in zip(axes, ("plain", "resnet"), ("plain", "ResNet")):
        for r in _spread(diag[f"{kind}{depth}"], 4):
            norms = list(r["gradient_norms"].values())
            ax.semilogy(np.arange(1, len(norms) + 1), norms, label=f"step {r['step']}", linewidth=1.2)
        ax.set(title=f"{name}-{depth}", xlabel="layer (input → output)")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("‖∂loss/∂W‖")
    _save(fig, path)


def _side_by_side(panels: dict[str, dict[str, list[dict]]], path: Path) -> None:
    """Fig. 6's layout: one panel of error curves per kind of network (plain, residual)."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, (name, runs) in zip(axes, panels.items()):
        error_curves(runs, ax=ax, title=f"{name} networks: training error (dashed), test error (solid)")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _params(depth: int, shortcut: str) -> int:
    if shortcut == "none":
        return describe(f"plain{depth}")["params"]
    return describe(f"resnet{depth}", shortcut=shortcut)["params"]


def _train_command(job: Job, s: Settings) -> str:
    parts = ["resnet", "train", "--model", job.model, "--recipe", s.recipe, "--out", str(s.out / "runs" / job.label)]
    if s.data:
        parts += ["--data", s.data]
    if s.iters:
        parts += ["--iters", str(s.iters)]
    for key, value in {**s.overrides, **job.overrides}.items():
        parts += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return shlex.join(parts)


def shortcuts(
    depth: int | None = None,
    data: str | None = None,
    out="reproductions/shortcuts",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: dict | None = None,
    time_limit: str | float | None = None,
    preset: str | None = None,
) -> Reproduction:
    """Shortcut options A, B and C (and the plain net) at one CIFAR depth (default 32), in the spirit
    of Table 3. `preset` names a protocol of PRESETS. Returns the paths of report.html and summary.md
    and the findings."""
    p = find_preset("shortcuts", preset)
    if p is not None:
        depth, iters, overrides = depth or p.depth, iters or p.iters, {**p.overrides, **(overrides or {})}
    depth = depth or 32
    s = _settings(out, data, quick, iters, device, recipe, progress, command, overrides, time_limit)
    options = ("none", "A", "B", "C")
    jobs = [Job(f"plain{depth}", f"plain{depth}")] + [
        Job(f"resnet{depth}-{o}", f"resnet{depth}", {"model_options": {"shortcut": o}}) for o in options[1:]
    ]
    rows = run_jobs(jobs, s)
    figures = s.out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    labels = {job.label: o for job, o in zip(jobs, options)}
    error_curves(
        {f"option {o}" if o != "none" else "plain": rows[label] for label, o in labels.items()},
        figures / "shortcut_curves.png",
        title=f"{depth} layers: training (dashed), test (solid) error",
    )
    table = Table(
        f"Shortcut options at {depth} layers (CIFAR-10)",
        ["shortcut", "params", "train error", "test error", "paper Table 3 (ResNet-34, ImageNet top-1)"],
        [
            [
                o,
                f"{_params(depth, o):,}",
                _final(rows[label], "train_error"),
                _final(rows[label], "test_error"),
                PAPER_TABLE3[o],
            ]
            for label, o in labels.items()
        ],
        "A: zero-padding identity (no parameters); B: projections where the shape changes; C: projections "
        "everywhere. Errors are the mean of the last three evaluations.",
    )
    findings = _shortcut_findings({o: _final(rows[label], "test_error") for label, o in labels.items()})
    report = Report(
        f"Shortcut options A, B, C at {depth} layers",
        f"{depth}-layer CIFAR networks with each shortcut option and without shortcuts, trained with the {recipe} "
        f"recipe{f' for {s.iters} iterations' if s.iters else ''} on {data or 'the embedded CIFAR-10 subset'}.",
        figures=[("Training (dashed) and test (solid) error by shortcut option.", figures / "shortcut_curves.png")],
        tables=[table],
        findings=findings,
        commands=[s.command or f"resnet reproduce shortcuts --depth {depth}", *(_train_command(j, s) for j in jobs)],
    )
    return report.write(s.out)


def _shortcut_findings(errors: dict[str, float]) -> list[Finding]:
    """Table 3's claims from the test errors (%) by option ("none": the plain net)."""
    options = [errors[o] for o in ("A", "B", "C")]
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


def mlp_depth(
    blocks=(1, 4, 8, 16),
    data: str | None = "digits",
    out="reproductions/mlp",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str = "",
    overrides: dict | None = None,
    time_limit: str | float | None = None,
) -> Reproduction:
    """Residual MLPs against plain ones of `blocks` dense blocks (3 layers each) on feature vectors
    (default: the embedded digits): does the degradation of deep plain networks, and its cure by the
    residual connection, hold beyond convolutions? Returns the paths of report.html and summary.md
    and the findings."""
    blocks = sorted(blocks)
    s = _settings(
        out,
        data or "digits",
        False,
        iters or (QUICK["iters"] if quick else None),
        device,
        "mlp",
        progress,
        command,
        {**(QUICK["overrides"] if quick else {}), **(overrides or {})},
        time_limit,
    )
    s.overrides.pop("log.diagnostics", None)
    jobs = [
        Job(f"{kind}_mlp-{b}", f"{kind}_mlp", {"model_options": {"blocks": b}})
        for b in blocks
        for kind in ("plain", "residual")
    ]
    rows = run_jobs(jobs, s)
    figures = s.out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    _side_by_side(
        {kind: {f"{b} blocks": rows[f"{kind}_mlp-{b}"] for b in blocks} for kind in ("plain", "residual")},
        figures / "mlp_training_curves.png",
    )
    table = Table(
        f"Error (%) by depth on {s.data}",
        ["blocks", "layers", "params", "plain train", "plain test", "residual train", "residual test"],
        [
            [
                b,
                2 + 3 * b,
                f"{describe('residual_mlp', blocks=b)['params']:,}",
                _final(rows[f"plain_mlp-{b}"], "train_error"),
                _final(rows[f"plain_mlp-{b}"], "test_error"),
                _final(rows[f"residual_mlp-{b}"], "train_error"),
                _final(rows[f"residual_mlp-{b}"], "test_error"),
            ]
            for b in blocks
        ],
        "Errors are the mean of the last three evaluations; training error is measured on the training "
        "batches, with dropout active.",
    )
    lo, hi = blocks[0], blocks[-1]
    plain = {b: _final(rows[f"plain_mlp-{b}"], "train_error") for b in (lo, hi)}
    res = {b: _final(rows[f"residual_mlp-{b}"], "train_error") for b in (lo, hi)}
    findings = [
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
    report = Report(
        "Residual MLPs against plain MLPs",
        f"MLPs of {', '.join(map(str, blocks))} dense blocks (dense 1024, dropout, dense 512, dense 1024; "
        f"residual: added to the block's input) trained with the mlp recipe"
        f"{f' for {s.iters} iterations' if s.iters else ''} on {s.data}.",
        figures=[
            (
                "Training (dashed) and test (solid) error of plain and residual MLPs.",
                figures / "mlp_training_curves.png",
            )
        ],
        tables=[table],
        findings=findings,
        commands=[
            s.command or f"resnet reproduce mlp --blocks {' '.join(map(str, blocks))}",
            *(_train_command(j, s) for j in jobs),
        ],
    )
    return report.write(s.out)
