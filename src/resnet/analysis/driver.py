"""The experiment driver: every reproduction runs through `run_experiment(experiment, settings)`.

An experiment is a protocol: a small subclass of `Experiment` that declares what to train and what its
report shows. The driver trains its jobs one after the other, each in its own folder OUT/runs/LABEL (a
finished one is kept, an interrupted one resumes from its checkpoint, a folder holding a run of other
settings is refused), then writes OUT/report.html and OUT/summary.md from the experiment's figures,
tables and findings, with the commands that reproduce every job.

How a protocol is written (experiments/shortcuts.py is the smallest):

- class attributes: `name` (the word after `resnet reproduce`), `presets` ({name: Preset}, what
  --preset offers), `quick` (the Preset of --quick), `diagnostics` (whether every run records layer
  responses and gradient norms);
- `__init__(self, settings, **sizes)`: the experiment's own arguments (depths, seeds, ...) as the caller
  or a preset gave them, None where neither did. Make the jobs here and keep them in fields that say
  what each one is (`self.plain[depth]`): a job's run is found by the job itself, `runs[job]`;
- `jobs()`: the jobs, in the order they train;
- `title()`, `intro()`, `command()`: the report's heading, its first paragraph (`settings.trained()`
  says how the networks were trained) and the `resnet reproduce` line that makes it;
- `figures(runs, folder)`: draw PNGs into `folder`, return their (caption, path); `tables(runs)`: a
  list of `Table`; `findings(runs)`: the paper's claims as `Finding`s, true or false by the numbers.

`runs` maps each job to its `Run` (metrics rows, diagnostics, `final(key)`). `settings.networks` names a folder of
trained networks that several experiments share (a job whose folder there holds a run of the same
settings is kept). An experiment that
evaluates networks rather than trains them (a lesion study, a loss landscape) declares as jobs only the
networks it needs trained (none when it is given weights); its measurements are its own methods, which
write each result under `settings.out` as it is computed (so that the same command resumes them) and
which its figures, tables and findings read.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import run_folder
from ..config import TrainConfig, from_dict, parse_overrides, resolve, to_dict
from ..errors import Stopped, UsageError
from ..train.api import run
from ..train.stop import format_duration, parse_time_limit
from .presets import QUICK, Preset
from .report import Finding, Report, Reproduction, Table

# what a report --at an iteration says first: the findings are of that point of training
AT_NOTE = (
    "The networks as they stood at iteration {step:,}, not trained further (`--at`): the findings are of that "
    "point of their training, not of its end."
)
# what a --quick run's report and command say first: its findings are numbers, not evidence
QUICK_NOTE = (
    "A --quick run: it checks that the reproduction runs, in a few hundred iterations per network, too "
    "few for its findings to mean anything (--preset cpu, or the paper's protocol, for evidence)."
)
# the settings a run folder must share with the job to be kept or resumed
SAME = ("model", "model_options", "recipe", "iters", "epochs", "batch_size", "seed", "data", "optimizer", "schedule")


@dataclass(frozen=True, eq=False)  # a job is known by itself (runs[job]), not by an equal one
class Job:
    """One network an experiment trains: its folder under runs/ (also its name in tables), its registry
    name and the recipe overrides of this job alone."""

    label: str
    model: str
    overrides: dict = field(default_factory=dict)


@dataclass
class Run:
    """What a job left in its folder."""

    folder: Path
    rows: list[dict]  # metrics.jsonl
    until: int | None = None  # the iteration the run is read at (None: its end)

    @cached_property
    def diagnostics(self) -> list[dict]:
        """The rows of diagnostics.jsonl: gradient norms and layer responses (with log.diagnostics)."""
        rows = run_folder.read(self.folder, run_folder.DIAGNOSTICS)
        return [r for r in rows if self.until is None or r["step"] <= self.until]

    def final(self, key: str, last: int = 3) -> float:
        """The mean of `key` over the last evaluations, in % (the end of a run, less noisy than one point)."""
        values = [r[key] for r in self.rows if r.get(key) is not None][-last:]
        return 100 * float(np.mean(values)) if values else math.nan


Runs = dict[Job, Run]  # each job's run, found by the job


@dataclass(frozen=True)
class Settings:
    """What every job of an experiment shares: the caller's options, which `reproduce` completes (the
    preset's and --quick's length and overrides; the deadline of `time_limit`)."""

    out: Path
    data: str | None = None
    quick: bool = False
    iters: int | None = None
    device: str | None = None
    recipe: str = "cifar-paper"
    progress: bool = True
    command: str = ""
    overrides: list[str] | dict | None = None  # "key=value" strings or a mapping; a mapping once completed
    time_limit: str | float | None = None
    deadline: float | None = None  # time.monotonic() by which the reproduction stops
    networks: Path | None = None  # the folder of the trained networks (None: OUT/runs), shareable
    at: int | str | None = None  # report the runs as they stand at this iteration ("common": the last all reached);
    # for protocols whose report reads only the runs' logs (degradation, shortcuts, mlp)

    def folder(self, job: Job) -> Path:
        """Where `job` trains: networks/LABEL (OUT/runs/LABEL by default)."""
        return Path(self.networks or self.out / "runs") / job.label

    def trained(self) -> str:
        """How the networks were trained, for an intro: "trained with the R recipe for N iterations on D"."""
        length = f" for {self.iters} iterations" if self.iters else ""
        return f"trained with the {self.recipe} recipe{length} on {self.data or 'the embedded CIFAR-10 subset'}"


def settings(arguments: dict) -> Settings:
    """The Settings among a public experiment function's `arguments` (its locals())."""
    return Settings(**{f.name: arguments[f.name] for f in fields(Settings) if f.name in arguments})


class Experiment(ABC):
    """A protocol on the driver (see the module's docstring): what to train and what to report."""

    name: ClassVar[str]
    presets: ClassVar[dict[str, Preset]] = {}
    quick: ClassVar[Preset] = QUICK
    diagnostics: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def jobs(self) -> list[Job]: ...

    @abstractmethod
    def title(self) -> str: ...

    @abstractmethod
    def intro(self) -> str: ...

    @abstractmethod
    def command(self) -> str: ...

    @abstractmethod
    def figures(self, runs: Runs, folder: Path) -> list[tuple[str, Path]]: ...

    @abstractmethod
    def tables(self, runs: Runs) -> list[Table]: ...

    @abstractmethod
    def findings(self, runs: Runs) -> list[Finding]: ...


def run_experiment(
    experiment: type[Experiment], settings: Settings, preset: str | None = None, **sizes
) -> Reproduction:
    """Run `experiment` with `settings` and its `sizes` (its keyword arguments: what the caller leaves
    None comes from the preset, then from --quick): train its jobs, then write report.html and
    summary.md into `settings.out`. Returns their paths and the findings."""
    layers = [p for p in (find_preset(experiment, preset), experiment.quick if settings.quick else None) if p]
    for p in layers:
        sizes.update({key: sizes.get(key) or value for key, value in p.sizes.items()})
    protocol = experiment(complete(settings, layers, experiment.diagnostics), **sizes)
    s, jobs = protocol.settings, protocol.jobs()
    runs = _train_all(jobs, s) if s.at is None else _as_they_stand(jobs, s)
    folder = s.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    intro = protocol.intro()
    if s.at is not None:
        step = next(iter(runs.values())).until
        intro = f"{AT_NOTE.format(step=step)} {intro}"
    report = Report(
        protocol.title(),
        f"{QUICK_NOTE} {intro}" if s.quick else intro,
        figures=protocol.figures(runs, folder),
        tables=protocol.tables(runs),
        findings=protocol.findings(runs),
        commands=[s.command or protocol.command(), *(_train_command(job, s) for job in jobs)],
    )
    return report.write(s.out)


def find_preset(experiment: type[Experiment], name: str | None) -> Preset | None:
    """The preset `name` of `experiment` (None: none). UsageError for an unknown one."""
    if name is None:
        return None
    if name not in experiment.presets:
        offered = ", ".join(experiment.presets) or "none"
        raise UsageError(f"reproduce {experiment.name} has no preset {name!r} (presets: {offered})")
    return experiment.presets[name]


def complete(s: Settings, layers: list[Preset], diagnostics: bool) -> Settings:
    """`s` with what `layers` (the preset, then --quick) set where the caller set nothing."""
    if s.data is None and not s.quick:
        raise UsageError(
            "the full reproduction trains on CIFAR-10: pass --data (e.g. cifar10-jpeg.tar.gz, or "
            "cifar10 --download); --quick uses the embedded subset"
        )
    overrides = {"log.diagnostics": True} if diagnostics else {}
    for p in reversed(layers):  # the caller's overrides, then the preset's, then --quick's win
        overrides.update(p.overrides)
    overrides.update(parse_overrides(s.overrides))
    iters = s.iters or next((p.iters for p in layers if p.iters), None)
    limit = parse_time_limit(s.time_limit)  # the whole reproduction's: each job gets what is left of it
    deadline = time.monotonic() + limit if limit is not None else None
    return replace(s, out=Path(s.out), iters=iters, overrides=overrides, deadline=deadline)


def _train_all(jobs: list[Job], s: Settings) -> Runs:
    """Each job's Run (`_run`), in turn; after each one trained from its start, how long it took and how
    long the unfinished ones left will take at its pace (`forecast`), by their cost (`_cost`)."""
    configs = [job_config(job, s) for job in jobs]
    runs: Runs = {}
    timed = []  # (seconds, config) of each job trained from its start by this call
    for i, (job, config) in enumerate(zip(jobs, configs), 1):
        fresh, start = not run_folder.started(s.folder(job)), time.monotonic()
        runs[job] = _run(job, config, s, f"[{i}/{len(jobs)}]")
        if fresh:
            timed.append((time.monotonic() - start, config))
        left = [c for j, c in zip(jobs[i:], configs[i:]) if not run_folder.finished(s.folder(j))]
        if fresh and left and s.progress:
            took = format_duration(timed[-1][0])
            rest = format_duration(forecast([(seconds, _cost(c)) for seconds, c in timed], [_cost(c) for c in left]))
            print(f"[{i}/{len(jobs)}] {job.label}: trained in {took}; the {len(left)} left: about {rest} to go")
    return runs


def _as_they_stand(jobs: list[Job], s: Settings) -> Runs:
    """Each job's Run read at iteration `s.at` (for "common", the last evaluation every run has reached),
    training none: runs not finished yet (carried from machine to machine, or cut off), compared at
    matched iterations. UsageError for a job without a run of its settings or without an evaluation there."""
    rows = {}
    for job in jobs:
        folder = s.folder(job)
        _check_same(folder, to_dict(job_config(job, s)))
        rows[job] = [r for r in run_folder.read(folder) if "train_error" in r]
        if not rows[job]:
            raise UsageError(f"{folder}: no evaluation to report (--at reads the runs as they stand; it trains none)")
    at = min(r[-1]["step"] for r in rows.values()) if s.at == "common" else int(s.at)
    for job, kept in rows.items():
        if at not in {r["step"] for r in kept}:
            raise UsageError(
                f"{s.folder(job)}: not evaluated at iteration {at:,} (its last evaluation: {kept[-1]['step']:,})"
            )
    return {job: Run(s.folder(job), [r for r in kept if r["step"] <= at], until=at) for job, kept in rows.items()}


def forecast(timed: list[tuple[float, float]], left: list[float]) -> float:
    """The seconds that jobs of costs `left` will take, at the seconds per unit of cost of the `timed`
    ones (their seconds and cost: everything a job takes, its set-up, evaluations and plots included)."""
    return sum(seconds for seconds, _ in timed) / sum(cost for _, cost in timed) * sum(left)


def _cost(config: TrainConfig) -> float:
    """What training `config` costs, in multiply-adds: its network's per image × its images (epochs
    stand for images when the length is in epochs: the jobs of an experiment share their data)."""
    from ..models.complexity import describe  # counts on the meta device; cached on disk

    macs = describe(config.model, config.data.image_size, **config.model_options)["macs"]
    return macs * config.batch_size * (config.iters or config.epochs)


def _run(job: Job, config: TrainConfig, s: Settings, position: str) -> Run:
    """Train `job` as `config` says unless its folder holds it finished (resuming it when interrupted);
    its Run."""
    folder = s.folder(job)
    _check_same(folder, to_dict(config))
    finished, started = run_folder.finished(folder), run_folder.started(folder)
    if s.progress:
        state = "finished, kept" if finished else "resuming" if started else "training"
        print(f"{position} {job.label}: {state} ({folder})", flush=True)
    if not finished:
        left = None if s.deadline is None else max(1e-3, s.deadline - time.monotonic())
        _train(job, config, folder, s.progress, left)
    return Run(folder, run_folder.read(folder))


def job_config(job: Job, s: Settings) -> TrainConfig:
    """The training configuration of `job` under the completed settings `s`."""
    fields = {"model": job.model, "data.source": s.data, "device": s.device}
    return resolve(s.recipe, {**s.overrides, **job.overrides}, **fields, iters=s.iters)


def _train(job: Job, config: TrainConfig, folder: Path, progress: bool, time_limit: float | None) -> None:
    """Train `config` in `folder`, or continue the run there exactly as it was set up."""
    state = run_folder.resume(folder)[1] if run_folder.started(folder) else None
    if state is not None:
        config = from_dict(TrainConfig, state["config"])
    try:
        run(config, folder, state, progress=progress, time_limit=time_limit)
    except Stopped as e:  # the reproduction, not the one run, is what the user resumes
        what = str(e).split("; resume with:")[0]
        raise Stopped(
            f"{job.label} {what}; the same `resnet reproduce` command continues it (finished models are kept)",
            e.code,
        ) from None


def _check_same(folder: Path, wanted: dict) -> None:
    have = run_folder.read_config(folder)
    if have is None:  # nothing there yet
        return
    for key in SAME:
        if have.get(key) != wanted.get(key):
            there, now = have.get(key), wanted.get(key)
            if isinstance(there, dict) and isinstance(now, dict):  # name the setting, not the section
                sub = next(k for k in {**there, **now} if there.get(k) != now.get(k))
                key, there, now = f"{key}.{sub}", there.get(sub), now.get(sub)
            raise UsageError(
                f"{folder} holds a run with other settings ({key}: {there} there, {now} now); use another --out "
                "(or --networks)"
            )


def _train_command(job: Job, s: Settings) -> str:
    """The `resnet train` line that trains `job` alone."""
    parts = ["resnet", "train", "--model", job.model, "--recipe", s.recipe, "--out", str(s.folder(job))]
    if s.data:
        parts += ["--data", s.data]
    if s.iters:
        parts += ["--iters", str(s.iters)]
    for key, value in {**s.overrides, **job.overrides}.items():
        parts += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return shlex.join(parts)
