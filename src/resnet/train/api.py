"""The Python face of `resnet train` and `resnet finetune`: a run from a recipe (or a run folder to
resume), and fine-tuning from pre-trained weights."""

from __future__ import annotations

import errno
from functools import reduce
from pathlib import Path

from .. import run_folder
from ..config import TrainConfig, from_dict, parse_overrides, resolve, set_once, to_dict
from ..errors import RunError, UsageError
from ..models import get_spec
from ..models.weights import read_weights
from .runtime import teardown
from .stop import parse_time_limit
from .trainer import RunResult, Trainer


def train(
    model: str | None = None,
    data: str | None = None,
    recipe: str = "fast",
    out: str | Path | None = None,
    overrides: list[str] | dict | None = None,
    *,
    iters: int | None = None,
    epochs: float | None = None,
    device: str | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    time_limit: str | float | None = None,
) -> RunResult:
    """Train `model` on `data` with `recipe` (a shipped recipe's name or a YAML file), writing the run to `out`.
    The defaults (the recipe's model, resnet20, on the embedded CIFAR-10 subset with the `fast` recipe) train
    in minutes on a CPU; `recipe="cifar-paper"` is the paper's protocol.

    `overrides` ("key=value" strings or a mapping) change recipe keys, e.g. {"optimizer.lr": 0.05}.
    `iters` or `epochs` set the length (milestones scale with it). With `resume`, the run in `out`
    continues from its last checkpoint, exactly, as it was set up: a length, data or overrides other
    than the run's are refused. An existing run in `out` is replaced only with `force`.
    `stop_after` pauses the run after that many iterations of this session, with a checkpoint to resume
    from; the result's `finished` is then False. `time_limit` ("90m", "2h30m", or seconds) stops the
    run with a checkpoint before that much time has passed, as SIGTERM, SIGINT or SIGUSR1 do after the
    current step: both raise `resnet.errors.Stopped`, whose `code` is the exit code for a scheduler.
    """
    limit = parse_time_limit(time_limit)
    if resume:
        out, state = run_folder.resume(out)
        config = from_dict(TrainConfig, state["config"])
        if model is not None and model != config.model:
            raise UsageError(f"{out / run_folder.LAST} is a checkpoint of {config.model}, not {model}")
        _check_resumable(config, out, data=data, overrides=overrides, iters=iters, epochs=epochs)
    else:
        state = None
        fields = {"model": model, "data.source": data, "device": device}
        config = resolve(recipe, overrides, **fields, iters=iters, epochs=epochs)
        get_spec(config.model)  # an unknown model fails before any work
        out = run_folder.new(out, f"{config.model}-{config.recipe}", force)
    return run(config, out, state, progress=progress, stop_after=stop_after, time_limit=limit)


def _check_resumable(config: TrainConfig, out: Path, *, data, overrides, iters, epochs) -> None:
    """Refuse what --resume cannot honour: a run continues as it was set up. A new length in particular:
    the schedule (milestones, warm-up, one-cycle) is a function of the length, so the steps already done
    were those of the old one, and no continuation equals an uninterrupted run of the new length."""
    length = f"{config.iters} iterations" if config.iters else f"{config.epochs:g} epochs"
    asked = f"{iters} iterations" if iters else f"{epochs:g} epochs" if epochs else None
    if asked is not None and asked != length:
        raise UsageError(
            f"{out} was set up for {length}, and its learning-rate schedule for that length shaped the steps "
            f"already done: --resume continues it as it is; train a new run for {asked}"
        )
    have, asked = to_dict(config), parse_overrides(overrides)
    if data is not None:
        asked["data.source"] = data
    for key, value in asked.items():  # the options of the command that started the run may be repeated
        there = reduce(
            lambda section, name: section.get(name) if isinstance(section, dict) else None, key.split("."), have
        )
        if there != value:
            raise UsageError(
                f"--resume continues {out} as it was set up ({key}: {there} there, {value} now): leave the "
                "option out, or train a new run"
            )


def run(
    config: TrainConfig,
    out: Path,
    state: dict | None = None,
    *,
    progress: bool = True,
    stop_after: int | None = None,
    time_limit: float | None = None,
) -> RunResult:
    """Train the resolved `config` in the run folder `out` (from the checkpoint `state` when resuming);
    a full disk is one line, and the process's runtime is torn down after."""
    try:
        return Trainer(config, out, state, progress).run(stop_after, time_limit)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise RunError(f"disk full while writing {e.filename or out}; the last checkpoint is intact") from None
        raise
    finally:
        teardown()


def finetune(
    source: str,
    data: str | None = None,
    model: str | None = None,
    mode: str | None = None,
    recipe: str = "finetune",
    out=None,
    overrides: list[str] | dict | None = None,
    **kwargs,
) -> RunResult:
    """Fine-tune pre-trained weights `source` (this project's checkpoint, a torchvision/timm/safetensors
    file, or a published name such as "imagenet" with `model`) on `data` with a new classifier.

    `mode`: "linear" (probe), "full" or "gradual" (default: the recipe's finetune.mode, "full").
    Other arguments as `resnet.train`; returns its RunResult.
    """
    fields = parse_overrides(overrides)
    meta = read_weights(source).meta if Path(source).is_file() else {}
    model = model or meta.get("model_name")
    if model is None:
        raise UsageError(f"{source}: say which network these weights are for (--model NAME)")
    if meta.get("model_name") == model and "model_options" not in fields:
        fields["model_options"] = meta.get("model_options", {})
    for key, value in (("finetune.source", str(source)), ("finetune.mode", mode)):
        if value is not None:
            set_once(fields, key, value)
    return train(model, data, recipe, out, fields, **kwargs)
