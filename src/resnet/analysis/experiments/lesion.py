"""Residual networks behave like ensembles of relatively shallow networks (Veit, Wilber, Belongie
2016): the lesion study (§4: blocks deleted and reordered at test time) and the paths (§5) of a
ResNet, against the plain net of the same depth. The networks are trained as jobs, or given as
weights; the measurements are written under OUT/lesion/ as they finish, so the same command resumes."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ...data.dataset import sample
from ...data.loader import make_loader
from ...data.sources import load_data
from ...files import write_together
from ...inference import Classifier, family_config, from_weights, load
from ...models.weights import read_weights
from ...plots import figure
from ...train.runtime import setup
from .. import lesions, paths
from ..driver import Experiment, Job, Runs, Settings
from ..figures import save
from ..presets import QUICK, SHORT_ITERS, SHORT_SCHEDULE, Preset
from ..report import Finding, Table

# Veit et al.'s ResNet-110 on CIFAR-10 (54 blocks) and its plain counterpart (VGG-15), for the tables
PAPER = {
    "single": "no noticeable change, except a slightly larger one for the downsampling blocks (Fig. 3)",
    "plain": "random chance, 90% error, for any layer of VGG-15 (Fig. 3)",
    "several": "the error grows smoothly with the number of blocks deleted (Fig. 5a)",
    "reorder": "the error grows smoothly as Kendall's τ falls (Fig. 5b)",
    "paths": "54 blocks; paths 5-17 blocks long carry almost all the gradient, 0.45% of all paths (Fig. 6)",
}
BATCH = 250  # images evaluated at once: every block's input of one batch is held
PATH_IMAGES = 32  # test images whose gradient the path analysis follows
SHARE = 0.9  # the share of the whole gradient that the effective path lengths carry
# how the changed networks' blocks run, for the report
_ENGINES = {
    "openvino": "on OpenVINO (each compiled once, its outputs checked against PyTorch's float32 within 1e-4)",
    None: "on PyTorch (eager, float32)",
}
CHANCE = 90.0  # % error of a guess among CIFAR-10's ten classes


class Lesion(Experiment):
    """ResNet-`depth` and plain-`depth` (trained, or `weights` and `plain_weights` given): single
    blocks deleted, `draws` random sets of k blocks deleted and random swaps, on `images` test images
    (None: all), batch norms in eval mode or re-estimated on `recalibrate` training images; and the
    gradient carried by the paths of each length."""

    name = "lesion"
    diagnostics = False
    presets = {
        "cpu": Preset(
            "ResNet-56 and plain-56, 1,000 iterations of cifar-paper with a cosine schedule; the lesion study "
            "on the 10,000 test images",
            iters=SHORT_ITERS,
            sizes={"depth": 56},
            overrides=SHORT_SCHEDULE,
        ),
    }
    quick = replace(QUICK, sizes={"depth": 20, "draws": 2})

    def __init__(
        self,
        settings: Settings,
        depth: int | None = None,
        draws: int | None = None,
        images: int | None = None,
        recalibrate: int = 0,
        weights: str | None = None,
        plain_weights: str | None = None,
    ) -> None:
        super().__init__(settings)
        self.depth, self.draws, self.images, self.recalibrate = depth or 56, draws or 3, images, recalibrate
        self.models = {"resnet": f"resnet{self.depth}", "plain": f"plain{self.depth}"}
        self.weights = {"resnet": weights, "plain": plain_weights}
        for path in filter(None, self.weights.values()):
            read_weights(path)  # a missing or damaged file is refused before any network trains
        # a network given as weights is not trained
        self.trained = {kind: Job(model, model) for kind, model in self.models.items() if not self.weights[kind]}
        self.folder = Path(settings.out) / "lesion"
        self._results: dict | None = None  # the measurements, made once (see measure)

    def jobs(self) -> list[Job]:
        return list(self.trained.values())

    def title(self) -> str:
        return f"Residual networks as ensembles of paths: lesion study of ResNet-{self.depth} and plain-{self.depth}"

    def intro(self) -> str:
        given = [f"{kind} from {path}" for kind, path in self.weights.items() if path]
        networks = f"the others {self.settings.trained()}" if given else self.settings.trained()
        norms = (
            f"re-estimated on {self.recalibrate} training images for each changed network"
            if self.recalibrate
            else "the networks' own (eval mode)"
        )
        return (
            f"After Veit, Wilber and Belongie (2016), §4-5: blocks of ResNet-{self.depth} deleted and reordered at "
            f"test time, against plain-{self.depth}, and the gradient each path length carries. Networks: "
            f"{'; '.join([*given, networks])}. Evaluated on {self._count()} test images; batch-norm statistics: "
            f"{norms}; the blocks of the changed networks run {_ENGINES[self._engine]}. "
            "Deleting a block keeps its shortcut (y = shortcut(x)); the downsampling blocks' shortcut "
            "is option A, which subsamples and zero-pads half of the channels (Veit's networks project them), "
            "so deleting one leaves the next stage with half its channels zero."
        )

    def command(self) -> str:
        return f"resnet reproduce lesion --depth {self.depth}"

    def _count(self) -> int:
        size = self._data.size("test")
        return min(size, self.images) if self.images else size

    # the measurements, each written to OUT/lesion/NAME.json with what it was measured on

    @cached_property
    def _data_config(self):
        return replace(family_config(self.models["resnet"]).data, source=self.settings.data)

    @cached_property
    def _data(self):
        return load_data(self._data_config)

    def _network(self, kind: str, runs: Runs) -> tuple[Classifier, str]:
        """The network of `kind` and a key that changes when its weights change."""
        device = setup(self.settings.device or "auto").device
        path = self.weights[kind] or runs[self.trained[kind]].folder / "last.pt"
        if self.weights[kind]:
            classifier = from_weights(path, self.models[kind], self._data.classes, device=device)
        else:
            classifier = load(path, device=device)
        return classifier, f"{Path(path).resolve()}@{os.stat(path).st_mtime_ns}"

    def _batches(self, classifier: Classifier, split: str, images: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`images` images of `split` drawn evenly from its classes (`dataset.sample`), normalized for
        `classifier`, in batches."""
        data = replace(self._data, splits={**self._data.splits, split: sample(self._data.splits[split], images)})
        loader = make_loader(
            data, split, self._data_config, train=False, batch_size=BATCH, device=classifier.device,
            normalize=classifier.normalize,
        )  # fmt: skip
        return list(loader.eval_batches())

    def _measured(self, name: str, key: dict, measure) -> dict:
        """`measure()` (a dict), or what OUT/lesion/NAME.json holds when it was measured with `key`;
        the seconds it took (wall clock, and CPU time of this process) are kept with it."""
        path = self.folder / f"{name}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored["key"] == key:
                return stored
        start, cpu = time.perf_counter(), time.process_time()
        value = measure()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        stored = {"key": key, "seconds": seconds, "cpu_seconds": cpu, "engine": self._engine or "pytorch", **value}
        text = json.dumps(stored, indent=1).encode()
        write_together({path: lambda f: f.write(text)})
        return stored

    def measure(self, runs: Runs) -> dict:
        """Every measurement of both networks (read back where already made)."""
        if self._results is not None:
            return self._results
        if self.settings.progress:
            print(f"lesion study on {self._count()} test images ({self.folder})", flush=True)
        resnet, resnet_key = self._network("resnet", runs)
        plain, plain_key = self._network("plain", runs)
        base = {"images": self._count(), "recalibrate": self.recalibrate}
        results = {
            "resnet": self._measured("resnet_single", {**base, "net": resnet_key}, lambda: self._single(resnet)),
            "plain": self._measured("plain_single", {**base, "net": plain_key}, lambda: self._single(plain)),
            "several": self._measured(
                "resnet_several", {**base, "net": resnet_key, "draws": self.draws}, lambda: self._several(resnet)
            ),
            "reorder": self._measured(
                "resnet_reorder", {**base, "net": resnet_key, "draws": self.draws}, lambda: self._reorder(resnet)
            ),
            "paths": self._measured(
                "resnet_paths",
                {"net": resnet_key, "draws": self.draws, "images": min(PATH_IMAGES, self._count())},
                lambda: self._paths(resnet),
            ),
        }
        self._results = results
        return results

    @cached_property
    def _engine(self) -> str | None:
        """What runs the blocks of the changed networks: OpenVINO on a CPU where it is installed (each
        block compiled once, checked against float32), else eager PyTorch (None); eager too with
        recalibration, whose every lineup has blocks of its own."""
        device = setup(self.settings.device or "auto").device
        return (
            "openvino"
            if device.type == "cpu" and importlib.util.find_spec("openvino") is not None and not self.recalibrate
            else None
        )

    def _errors(self, classifier: Classifier, lineups: list[lesions.Lineup]) -> list[float]:
        calibration = self._batches(classifier, "train", self.recalibrate) if self.recalibrate else None
        batches = self._batches(classifier, "test", self._count())
        return lesions.lineup_errors(classifier.model, lineups, batches, calibration=calibration, engine=self._engine)

    def _setup(self, classifier: Classifier):
        model = classifier.model
        x, _ = self._batches(classifier, "test", 1)[0]
        return model, lesions.residual_blocks(model), lesions.block_shapes(model, x)

    def _single(self, classifier: Classifier) -> dict:
        """The intact error, then each block deleted alone (None: a plain block that changes the shape)."""
        model, blocks, shapes = self._setup(classifier)
        deletable = [i for i, b in enumerate(blocks) if not (b.plain and lesions.changes_shape(shapes[i]))]
        errors = self._errors(classifier, [blocks, *(lesions.delete(blocks, [i], shapes) for i in deletable)])
        by_block = dict(zip(deletable, errors[1:]))
        return {
            "intact": errors[0],
            "deleted": [by_block.get(i) for i in range(len(blocks))],
            "downsampling": [lesions.changes_shape(s) for s in shapes],
            "names": _block_names(model),
        }

    def _several(self, classifier: Classifier) -> dict:
        """`draws` random sets of k blocks deleted, k = 1 to half the blocks."""
        model, blocks, shapes = self._setup(classifier)
        rng, n = np.random.default_rng(0), len(blocks)
        ks = list(range(1, n // 2 + 1, max(1, n // 12)))
        sets = [(k, lesions.random_deletion(n, k, rng)) for k in ks for _ in range(self.draws)]
        errors = self._errors(classifier, [lesions.delete(blocks, deleted, shapes) for _, deleted in sets])
        return {"k": [k for k, _ in sets], "deleted": [d for _, d in sets], "error": errors}

    def _reorder(self, classifier: Classifier) -> dict:
        """`draws` orders after k random swaps of blocks of equal shape, k = 1, 2, 4, ... up to half the blocks."""
        model, blocks, shapes = self._setup(classifier)
        rng, n = np.random.default_rng(0), len(blocks)
        swaps = [2**i for i in range(n.bit_length()) if 2**i <= n // 2]
        orders = [(k, lesions.random_swaps(shapes, k, rng)) for k in swaps for _ in range(self.draws)]
        errors = self._errors(classifier, [lesions.reorder(blocks, order, shapes) for _, order in orders])
        taus = [lesions.kendall_tau(order) for _, order in orders]
        return {"swaps": [k for k, _ in orders], "tau": taus, "error": errors}

    def _paths(self, classifier: Classifier) -> dict:
        """The mean gradient magnitude of a path of each length, and the total of all paths of that length."""
        x, y = self._batches(classifier, "test", min(PATH_IMAGES, self._count()))[0]
        graph = paths.Paths(classifier.model, x, y)
        n = graph.blocks
        magnitudes = graph.magnitudes(range(n + 1), self.draws, np.random.default_rng(0))
        counts = paths.path_counts(n)
        return {"counts": counts, "magnitude": magnitudes, "total": [m * c for m, c in zip(magnitudes, counts)]}

    # the report

    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]:
        r = self.measure(runs)
        single, several, reorder, gradients = (folder / f"{n}.png" for n in ("fig3", "fig5a", "fig5b", "fig6"))
        _single_figure(r["resnet"], r["plain"], self.depth, single)
        _scatter_figure(several, r["several"]["k"], r["several"]["error"], r["resnet"]["intact"], "blocks deleted")
        _scatter_figure(reorder, r["reorder"]["tau"], r["reorder"]["error"], r["resnet"]["intact"], "Kendall's τ")
        _paths_figure(r["paths"], gradients)
        return [
            (
                f"Fig. 3: test error with one block deleted, ResNet-{self.depth} and plain-{self.depth} (dashed: "
                "intact; shaded: the downsampling blocks; plain's cannot be deleted).",
                single,
            ),
            (f"Fig. 5a: ResNet-{self.depth}, random sets of blocks deleted (line: the mean per k).", several),
            (f"Fig. 5b: ResNet-{self.depth}, random swaps of blocks of equal shape, against Kendall's τ.", reorder),
            (
                f"Fig. 6: the paths of ResNet-{self.depth}: how many of each length, the gradient magnitude of one "
                "path of that length, and of all of them together.",
                gradients,
            ),
        ]

    def tables(self, runs: Runs) -> list[Table]:
        r = self.measure(runs)
        return [self._single_table(r), self._sweep_table(r), self._paths_table(r), self._times_table(r)]

    def _single_table(self, r: dict) -> Table:
        res, pl = r["resnet"], r["plain"]
        rows = [["intact", "", res["intact"], pl["intact"]]]
        for i, name in enumerate(res["names"]):
            kind = "downsampling (option A)" if res["downsampling"][i] else ""
            rows.append([f"{i}: {name}", kind, res["deleted"][i], _or_dash(pl["deleted"][i])])
        return Table(
            f"One block deleted (test error, %): Veit: {PAPER['single']}; plain: {PAPER['plain']}",
            ["block", "", f"ResNet-{self.depth}", f"plain-{self.depth}"],
            rows,
            "A plain block that changes the shape has no identity to stand in its place (–).",
        )

    def _sweep_table(self, r: dict) -> Table:
        several, reorder = r["several"], r["reorder"]
        rows = [[f"{k} deleted", "", _mean_by(several["k"], several["error"])[k]] for k in sorted(set(several["k"]))]
        taus = _mean_by(reorder["swaps"], reorder["tau"])
        rows += [[f"{k} swaps", f"{taus[k]:.3f}", e] for k, e in _mean_by(reorder["swaps"], reorder["error"]).items()]
        return Table(
            f"Several blocks deleted, blocks reordered: ResNet-{self.depth}, mean of {self.draws} draws",
            ["change", "Kendall's τ", "test error"],
            rows,
            f"Veit: {PAPER['several']}; {PAPER['reorder']}.",
        )

    def _paths_table(self, r: dict) -> Table:
        p = r["paths"]
        n = len(p["counts"]) - 1
        lo, hi = paths.effective_lengths(p["total"], SHARE)
        share = 100 * sum(p["counts"][lo : hi + 1]) / 2**n
        rows = [
            ["blocks (n)", n, 54],
            ["paths", f"2^{n}", "2^54"],
            [f"lengths carrying {SHARE:.0%} of the gradient", f"{lo}-{hi}", "5-17 (almost all)"],
            ["their share of all paths", f"{share:.2f}%", "0.45%"],
        ]
        return Table("Paths (Veit §5)", ["", f"ResNet-{self.depth}", "Veit, ResNet-110"], rows, PAPER["paths"] + ".")

    def _times_table(self, r: dict) -> Table:
        parts = {
            "resnet": "one block deleted, ResNet",
            "plain": "one block deleted, plain",
            "several": "several deleted",
            "reorder": "reordered",
            "paths": "path gradients",
        }
        rows = [
            [label, f"{r[key]['seconds']:.0f}", f"{r[key]['cpu_seconds']:.0f}", _engine_name(r[key], key)]
            for key, label in parts.items()
        ]
        rows.append(["all", *(f"{sum(r[key][t] for key in parts):.0f}" for t in ("seconds", "cpu_seconds")), ""])
        return Table(
            "Time of each part (on the machine below)",
            ["part", "wall clock (s)", "CPU time (s)", "blocks run by"],
            rows,
            "CPU time is this process's over all its threads: on a machine shared with other work the wall clock is "
            "longer than on an idle one. OpenVINO runs each block compiled, its outputs checked against PyTorch's "
            "float32 (resnet.optimize's tolerance, 1e-4 of the largest output); the path gradients need autograd.",
        )

    def findings(self, runs: Runs) -> list[Finding]:
        r = self.measure(runs)
        return [*self._lesion_findings(r), self._paths_finding(r)]

    def _lesion_findings(self, r: dict) -> list[Finding]:
        res, pl = r["resnet"], r["plain"]
        kept = [e for e, down in zip(res["deleted"], res["downsampling"]) if not down]
        plain = [e for e in pl["deleted"] if e is not None]
        rise = float(np.mean(kept)) - res["intact"]
        broken = (pl["intact"] + CHANCE) / 2  # half way from the intact error to chance
        several = list(_mean_by(r["several"]["k"], r["several"]["error"]).values())
        reordered = list(_mean_by(r["reorder"]["swaps"], r["reorder"]["error"]).values())
        return [
            Finding(
                rise < (float(np.mean(plain)) - pl["intact"]) / 4,
                f"deleting one block (not downsampling) costs the ResNet little: {rise:+.2f} points on average "
                f"(at most {max(kept) - res['intact']:+.2f}), a quarter or less of what it costs the plain net "
                f"({float(np.mean(plain)) - pl['intact']:+.2f})",
            ),
            Finding(
                float(np.mean(plain)) >= broken,
                f"deleting one block breaks the plain net: {float(np.mean(plain)):.2f}% on average, at least half way "
                f"from its intact {pl['intact']:.2f}% to chance ({CHANCE:.0f}%)",
            ),
            Finding(_smooth(res["intact"], several), _smooth_statement("deleted blocks", res["intact"], several)),
            Finding(_smooth(res["intact"], reordered), _smooth_statement("swaps", res["intact"], reordered)),
        ]

    def _paths_finding(self, r: dict) -> Finding:
        p = r["paths"]
        n = len(p["counts"]) - 1
        lo, hi = paths.effective_lengths(p["total"], SHARE)
        return Finding(
            hi < n / 2,
            f"the gradient comes from short paths: {SHARE:.0%} of it through paths of {lo}-{hi} blocks, all "
            f"shorter than the typical path ({n / 2:g} of {n} blocks)",
        )


def _engine_name(stored: dict, part: str) -> str:
    if part == "paths":
        return "PyTorch (autograd)"
    return {"openvino": "OpenVINO", "pytorch": "PyTorch"}.get(stored.get("engine", "pytorch"), stored.get("engine"))


def _smooth(intact: float, means: list[float]) -> bool:
    """Whether the error rises with the change without a jump: it never falls by more than a point,
    ends above the intact error, and no step is over half the whole rise."""
    curve = [intact, *means]
    steps = np.diff(curve)
    return bool(curve[-1] > intact and steps.min() > -1.0 and steps.max() <= (curve[-1] - intact) / 2)


def _smooth_statement(what: str, intact: float, means: list[float]) -> str:
    errors = ", ".join(f"{e:.1f}" for e in means)
    return (
        f"the error grows smoothly with the {what}: intact {intact:.1f}%, then {errors}% (no step over half the rise)"
    )


def _mean_by(keys: list, values: list[float]) -> dict:
    """The mean of `values` for each key, in the order the keys first appear."""
    return {k: float(np.mean([v for kk, v in zip(keys, values) if kk == k])) for k in dict.fromkeys(keys)}


def _or_dash(value):
    return "–" if value is None else value


def _block_names(model) -> list[str]:
    return [f"layer{s + 1}.{i}" for s, stage in enumerate(model.stages()) for i in range(len(stage))]


def _single_figure(resnet: dict, plain: dict, depth: int, path: Path) -> None:
    fig = figure(figsize=(9, 4))
    ax = fig.subplots()
    n = len(resnet["deleted"])
    for i in (i for i in range(n) if resnet["downsampling"][i]):
        ax.axvspan(i - 0.5, i + 0.5, color="0.9")
    for r, label, color in ((resnet, f"ResNet-{depth}", "C0"), (plain, f"plain-{depth}", "C3")):
        ax.plot(range(n), [np.nan if e is None else e for e in r["deleted"]], "o-", color=color, label=label)
        ax.axhline(r["intact"], ls="--", color=color)
    ax.set(xlabel="block deleted", ylabel="test error (%)", ylim=(0, 100))
    ax.legend()
    save(fig, path)


def _scatter_figure(path: Path, x: list, errors: list[float], intact: float, xlabel: str) -> None:
    fig = figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.plot(x, errors, "o", alpha=0.5)
    means = _mean_by(x, errors)
    ax.plot(list(means), list(means.values()), "-", color="C0")
    ax.axhline(intact, ls="--", color="0.5")
    ax.set(xlabel=xlabel, ylabel="test error (%)")
    if xlabel.startswith("Kendall"):
        ax.invert_xaxis()
    save(fig, path)


def _paths_figure(p: dict, path: Path) -> None:
    fig = figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3)
    lengths = range(len(p["counts"]))
    axes[0].bar(lengths, np.array(p["counts"]) / sum(p["counts"]))
    axes[0].set(xlabel="path length", ylabel="share of the paths")
    axes[1].semilogy(lengths, p["magnitude"], "o-")
    axes[1].set(xlabel="path length", ylabel="gradient magnitude of one path")
    axes[2].plot(lengths, p["total"], "o-")
    axes[2].set(xlabel="path length", ylabel="total gradient magnitude")
    save(fig, path)
