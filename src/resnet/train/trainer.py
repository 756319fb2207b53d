"""The training loop: get a batch, forward under autocast, backward, step, log, evaluate, checkpoint.

`train()` is the Python face of `resnet train`. A run folder holds `config.yaml` (the resolved
config), `metrics.jsonl` (one row per evaluation), `last.pt` and `best.pt` (checkpoints),
`curves.png` (Fig. 6 style) and `summary.json`.
"""

from __future__ import annotations

import errno
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch

from .. import checkpoint, run_folder
from ..config import TrainConfig, from_dict, parse_overrides, resolve, set_once, to_dict
from ..data.augment import Normalize
from ..data.loader import fit_normalize, make_loader
from ..data.mixing import Mixing
from ..data.sources import load_data
from ..errors import RunError, Stopped, UsageError
from ..models import get_spec
from ..models.weights import read_weights
from ..plots import error_curves
from .build import build_model, build_optimizer, forward_pass, rng_state, set_rng_state, tensorboard_writer
from .diagnostics import gradient_norms, layer_responses
from .ema import EMA
from .evaluate import evaluate_batches
from .finetune import apply_freezing, parts, read_source, source_normalize
from .loss import training_loss
from .meter import Meter, NonFiniteGuard
from .modes import freeze_batch_norm
from .progress import Progress
from .runtime import resolve_precision, setup, teardown
from .schedule import LRSchedule
from .stop import StopRequest, format_duration, parse_time_limit

SYNC_EVERY = 10  # steps between reads of the running loss and error (and the non-finite check)
DIAGNOSTIC_BATCH = 128  # images of the fixed batches that diagnostics are measured on
FORECAST_STEPS = 20  # iterations timed before the run says how long the rest will take
LONG_RUN = 30 * 60  # seconds: a run this long is told how to stop or shorten it
EVAL_COST = 1 / 3  # an evaluated image costs about a third of a trained one (forward, no backward)


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

    @property
    def test_accuracy(self) -> float:
        return 1 - self.test_error


def train(
    model: str | None = None,
    data: str | None = None,
    recipe: str = "cifar-paper",
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

    `overrides` ("key=value" strings or a mapping) change recipe keys, e.g. {"optimizer.lr": 0.05}.
    `iters` or `epochs` set the length (milestones scale with it). With `resume`, the run in `out`
    continues from its last checkpoint, exactly. An existing run in `out` is replaced only with `force`.
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
    else:
        state = None
        fields = {"model": model, "data.source": data, "device": device}
        config = resolve(recipe, overrides, **fields, iters=iters, epochs=epochs)
        get_spec(config.model)  # an unknown model fails before any work
        out = run_folder.new(out, f"{config.model}-{config.recipe}", force)
    try:
        return Trainer(config, out, state, progress).run(stop_after, limit)
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
):
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


class Trainer:
    """One run of `config`, from scratch or from a checkpoint `state`."""

    def __init__(self, config: TrainConfig, out: Path, state: dict | None = None, progress: bool = True) -> None:
        self.config, self.out, self.show_progress = config, out, progress
        self.runtime = setup(config.device)
        if config.sync_bn and self.runtime.world > 1 and self.runtime.device.type != "cuda":
            raise UsageError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU)")
        if config.batch_size % self.runtime.world:
            raise UsageError(f"batch_size={config.batch_size} is not divisible by the {self.runtime.world} processes")
        torch.manual_seed(config.seed)
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = not config.deterministic
        self.data = load_data(config.data)
        if state is not None and state["classes"] != self.data.classes:
            raise UsageError(
                f"the checkpoint's {len(state['classes'])} classes are not the data's {len(self.data.classes)}"
            )
        tuning = config.finetune
        self.source = read_source(tuning, config.model, config.model_options) if tuning.source and not state else None
        if state:
            normalize = Normalize(**state["normalize"])
        elif self.source and tuning.normalize == "source":
            normalize = source_normalize(self.source)
        else:
            normalize = fit_normalize(self.data, "train", config.data)
        self.normalize = normalize.to(self.runtime.device)
        self.train_loader = self._loader("train", self.normalize)
        self.eval_loaders = {s: self._loader(s, self.normalize) for s in self.data.split_names if s != "train"}
        self.mixing = Mixing(config.data, len(self.data.classes), config.seed)
        self.loss = training_loss(config)
        self.model, self.model_options = build_model(
            config, len(self.data.classes), self.data.features, self.source, self.runtime
        )
        self.parts = parts(self.model, tuning) if tuning.source else []  # fine-tuning's parts, frozen in turn
        self.optimizer = build_optimizer(config, self.model, self.parts, self.runtime.device)
        self.ema = EMA(self.model, config.ema) if config.ema.decay else None
        self.evaluated = self.ema.module if self.ema else self.model  # the network evaluated, selected and saved
        self.total = config.iters or max(1, round(config.epochs * self.train_loader.steps_per_epoch))
        self.schedule = LRSchedule(
            config.schedule, self.optimizer.param_groups[0]["initial_lr"], self.total, get_spec(config.model).depth
        )
        self._unfreeze_steps = {round(p.unfreeze_at * self.total) for p in self.parts if 0 < p.unfreeze_at <= 1}
        self.scaler = torch.amp.GradScaler(self.runtime.device.type, enabled=config.precision == "fp16")
        self.step, self.lr = 0, 0.0  # the step to do next, and the learning rate of the last one done
        self._saved_at, self._save_seconds = time.monotonic(), 0.0  # the last checkpoint: when, and the longest
        self.meter = Meter(self.runtime.device)
        self.guard = NonFiniteGuard(config.nonfinite, self.model, self.runtime.device)
        if state is not None:
            self._restore(state)
        self.forward = forward_pass(self.model, config, self.runtime)
        self.autocast = self.runtime.autocast(config.precision)
        if config.log.tensorboard:
            tensorboard_writer()  # a missing package stops the run before it starts

    # -- set-up -----------------------------------------------------------------------------

    def _loader(self, split: str, normalize: Normalize):
        cfg, runtime = self.config, self.runtime
        # batch_size is the global batch: each of the `world` processes takes its slice of it, so a run
        # sees the same batches (and resumes) whatever the number of processes.
        local = cfg.batch_size // runtime.world
        train = split == "train"
        return make_loader(
            self.data,
            split,
            cfg.data,
            train=train,
            batch_size=local if train else max(local, 256),
            device=runtime.device,
            normalize=normalize,
            seed=cfg.seed,
            rank=runtime.rank,
            world=runtime.world,
            channels_last=cfg.channels_last,
        )

    # -- checkpoints ------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "model_name": self.config.model,
            "model_options": self.model_options,
            "classes": self.data.classes,
            "normalize": self.normalize.state_dict(),
            "image_size": self.train_loader.eval_size,
            "eval_resize": self.train_loader.eval_resize,
            "model": self.evaluated.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "interval": self.meter.state_dict(),
            "skipped_steps": self.guard.skipped,
            "rng": rng_state(),
            "config": to_dict(self.config),
            # with an average, "model" (what every reader of a checkpoint uses) holds it; training goes on from these
            **({"trained_model": self.model.state_dict(), "ema_updates": self.ema.updates} if self.ema else {}),
        }

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state.get("trained_model", state["model"]))
        if self.ema:
            self.ema.load(state["model"], state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.guard.skipped = state["step"], state["skipped_steps"]
        self.meter.load_state_dict(state["interval"])
        set_rng_state(state["rng"])

    def save(self, name: str) -> None:
        start = time.monotonic()
        if self.runtime.is_main:
            checkpoint.save(self._state(), self.out / name)
        self._saved_at = time.monotonic()
        self._save_seconds = max(self._save_seconds, self._saved_at - start)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop_after: int | None = None, time_limit: float | None = None) -> RunResult:
        """Train to the end (or `stop_after` more steps), evaluating and checkpointing on the way. A
        signal (SIGTERM, SIGINT, SIGUSR1) or `time_limit` seconds stop it after a step, with a
        checkpoint, by raising `Stopped`."""
        cfg, runtime = self.config, self.runtime
        end = min(self.total, self.step + stop_after) if stop_after else self.total
        with run_folder.lock(self.out) if runtime.is_main else nullcontext(), StopRequest(time_limit) as stop:
            if runtime.is_main:
                run_folder.prepare(self.out, to_dict(cfg), self.step, (run_folder.METRICS, run_folder.DIAGNOSTICS))
            every = self.eval_interval()
            start_time, start_step = time.perf_counter(), self.step
            if self.step == 0 and cfg.log.diagnostics:
                self._diagnose()
            if time_limit:
                self.save("last.pt")  # measures how long a checkpoint takes: the limit must leave time for one
            with Progress(self.total, self.step, enabled=self.show_progress and runtime.is_main) as bar:
                bar.log(self.plan(every))
                for step in self.steps(end, log=bar.log):
                    if step == start_step + FORECAST_STEPS and end - step > FORECAST_STEPS:
                        bar.log(self._forecast(bar, end))
                    # at every interval and at the end, but not twice in the last half interval
                    evaluate = step == self.total or (step % every == 0 and self.total - step >= every / 2)
                    save = (cfg.log.checkpoint_every and step % cfg.log.checkpoint_every == 0) or (
                        cfg.log.checkpoint_minutes
                        and time.monotonic() - self._saved_at >= 60 * cfg.log.checkpoint_minutes
                    )
                    if evaluate or save or step % SYNC_EVERY == 0:
                        self._sync(bar)
                    if evaluate:
                        self._evaluate_and_save(bar)
                    elif save:
                        self.save("last.pt")
                    if self._stop_requested(stop, step) and step < end:
                        self._stop(bar, stop)
                if self.step < self.total:
                    self._sync(bar)
                    self.save("last.pt")
                    bar.log(f"paused at step {self.step} of {self.total}: --resume continues")
            return self._finish(time.perf_counter() - start_time, self.step - start_step)

    def plan(self, every: int) -> str:
        """One line of what the run will do, printed before its first step."""
        cfg, runtime = self.config, self.runtime
        images = self.data.size("train")
        epochs = self.total / self.train_loader.steps_per_epoch
        where = f"{runtime.device.type}" + (f" × {runtime.world} processes" if runtime.world > 1 else "")
        how = resolve_precision(cfg.precision, runtime.device) + (", channels_last" if cfg.channels_last else "")
        start = f"resuming at iteration {self.step:,} of " if self.step else ""
        return (
            f"{cfg.model}, {cfg.recipe}: {start}{self.total:,} iterations of batch {cfg.batch_size} "
            f"({epochs:.3g} epochs of {images:,} images), evaluating every {every:,} on "
            f"{' and '.join(self.eval_loaders) or 'no split'}; {where}, {how}; run folder {self.out}"
        )

    def _forecast(self, bar: Progress, end: int) -> str:
        """The time the rest of the run (to `end`) will take at the speed of its first steps."""
        per_step = bar.elapsed() / (self.step - bar.start)
        left = per_step * (end - self.step) * (1 + self.config.log.eval_share)  # evaluations still to come
        text = f"{per_step:.3g} s per iteration: about {format_duration(left)} to go"
        if left > LONG_RUN:
            text += (
                f" on this {self.runtime.device.type}. Ctrl-C stops with a checkpoint (--resume continues); "
                "--iters N, --time-limit or --recipe fast make it shorter"
            )
        return text

    def _stop_requested(self, stop: StopRequest, step: int) -> bool:
        """Whether to stop now (see StopRequest.step_done); the processes of a distributed run agree
        every SYNC_EVERY steps, so that all stop at the same step."""
        wanted = stop.step_done(self._save_seconds)
        if self.runtime.world == 1:
            return wanted
        if step % SYNC_EVERY:
            return False
        flag = torch.tensor(float(wanted), device=self.runtime.device)
        return self.runtime.all_reduce(flag).item() > 0

    def _stop(self, bar: Progress, stop: StopRequest) -> None:
        self._sync(bar)
        self.save("last.pt")
        self.runtime.barrier()
        reason, code = stop.reason()
        raise Stopped(
            f"stopped by {reason} at step {self.step} of {self.total}, with a checkpoint; "
            f"resume with: resnet train --out {self.out} --resume",
            code,
        )

    def steps(self, end: int | None = None, log=print):
        """Train from the current step to `end` (default: the end of the run), yielding the number of
        each step done: batch, learning rate, forward, backward, update (and fine-tuning's unfreezing,
        announced through `log`). What the loop measures is read by `_sync`; `run` adds evaluations
        and checkpoints. Benchmarks time this iterator: the loop the product runs."""
        end = self.total if end is None else end
        self.model.train()
        self._freeze()
        for x, y in islice(self.train_loader.batches(self.step), max(0, end - self.step)):
            self.train_step(x, y, self.schedule(self.step))
            self.step += 1
            if self.ema:
                self.ema.update(self.model, self.step)
            if self.step in self._unfreeze_steps:
                self._freeze()
                log(f"step {self.step}: unfreezing the next part of the backbone")
            yield self.step

    def eval_interval(self) -> int:
        """Iterations between evaluations: `log.every`, else `log.evals` spread over the run, stretched
        so that evaluating stays under `log.eval_share` of the run's work (the paper's every 1,000
        iterations of 64,000 is 2.6%; `--iters 200` on CIFAR-10 evaluates once, at the end)."""
        log = self.config.log
        if log.every:
            return log.every
        images = sum(self.data.size(split) for split in self.eval_loaders) * (2 if self.config.ema.decay else 1)
        least = EVAL_COST * images * (1 - log.eval_share) / (log.eval_share * self.config.batch_size)
        return max(1, self.total // log.evals, math.ceil(least))

    def _freeze(self) -> None:
        """Freeze what should be frozen at this step: fine-tuning's frozen parts, and BN if asked."""
        if self.parts:
            apply_freezing(self.parts, self.step / self.total)
        if self.config.freeze_bn:
            freeze_batch_norm(self.model)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        """One iteration on the batch (x, y) at learning rate `lr`: forward under autocast, loss,
        backward, optimizer step (unless the non-finite guard drops it); the meter adds the loss and errors."""
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        self.guard.before_forward()
        x, target = self.mixing(x, y, self.step)  # mixup or cutmix: class probabilities; else the labels
        with self.autocast:
            logits = self.forward(x)
            loss = self.loss(logits.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        if self.guard.allows(loss, self.step):
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.meter.add(loss, logits, y)  # the training error: against each image's own label, mixed or not

    def _sync(self, bar: Progress) -> None:
        """Read what the device measured: stop at a non-finite loss, end the §4.2 warm-up, update the bar."""
        self.guard.check(self.out / "last.pt")
        loss, _, count = self.meter.read()
        error = self.meter.error
        if self.schedule.observe(self.step, error):
            bar.log(
                f"step {self.step}: training error {error:.1%}, below {self.config.schedule.warmup_until_error:.0%}: "
                f"the warm-up is over, learning rate {self.schedule(self.step):g}"
            )
        bar.update(self.step, loss=loss / max(1, count), error=error, images=count * self.runtime.world)

    def _evaluate_and_save(self, bar: Progress) -> None:
        row = {
            "step": self.step,
            "epoch": round(self.step / self.train_loader.steps_per_epoch, 3),
            "lr": self.lr,
            "train_loss": self.meter.mean_loss,
            "train_error": self.meter.error,
        }
        for split, loader in self.eval_loaders.items():
            metrics = self._metrics(self.evaluated, loader)
            row.update(
                {
                    f"{split}_loss": metrics["loss"],
                    f"{split}_error": metrics["top1_error"],
                    f"{split}_top5_error": metrics["top5_error"],
                }
            )
            if self.ema:  # the trained weights' error beside their average's: what the average gains
                row[f"{split}_raw_error"] = self._metrics(self.model, loader)["top1_error"]
        row["images_per_s"], row["elapsed_s"] = bar.rate(), bar.elapsed()
        if self.guard.skipped:
            row["skipped_steps"] = self.guard.skipped
        self.meter.reset()
        selection = row.get("val_error", row.get("test_error"))
        improved = selection < self.schedule.best_eval  # the schedule keeps the best error
        if self.schedule.observe_eval(selection):
            bar.log(
                f"step {self.step}: no better error in {self.config.schedule.patience} evaluations: "
                f"learning rate divided by {1 / self.config.schedule.gamma:g}"
            )
        # Logs first, checkpoints last: a resumed run drops log rows newer than its checkpoint.
        if self.config.log.diagnostics:
            self._diagnose()
        if self.runtime.is_main:
            run_folder.append(self.out, row)
            if self.config.log.tensorboard:
                self._tensorboard(row)
        self.save("last.pt")
        if improved:
            self.save("best.pt")
        evals = " · ".join(f"{s} error {100 * row[f'{s}_error']:.2f}%" for s in self.eval_loaders)
        bar.log(
            f"step {self.step}/{self.total} · epoch {row['epoch']:.1f} · lr {self.lr:.4g} · "
            f"train error {100 * row['train_error']:.2f}% · {evals}"
            + (f" · ETA {format_duration(bar.remaining(self.step))}" if self.step < self.total else "")
        )

    def _metrics(self, model, loader) -> dict:
        return evaluate_batches(
            model, loader.eval_batches(), len(self.data.classes), autocast=self.autocast, reduce=self.runtime.all_reduce
        )

    def _diagnose(self) -> None:
        """Append the gradient norm of every layer (on a fixed training batch) and the response std of
        every 3×3 layer (on a fixed evaluation batch) to diagnostics.jsonl."""
        if not self.runtime.is_main:
            return
        train_x, train_y = next(self.train_loader.eval_batches(DIAGNOSTIC_BATCH))
        eval_x, _ = next(next(iter(self.eval_loaders.values())).eval_batches(DIAGNOSTIC_BATCH))
        grads = gradient_norms(self.model, train_x, train_y)
        responses = layer_responses(self.model, eval_x)
        row = {
            "step": self.step,
            "gradient_norms": {g.name: g.value for g in grads},
            "response_std": {r.name: r.value for r in responses},
        }
        run_folder.append(self.out, row, run_folder.DIAGNOSTICS)

    def _tensorboard(self, row: dict) -> None:
        if not hasattr(self, "_writer"):
            self._writer = tensorboard_writer()(self.out / "tensorboard")
        for key, value in row.items():
            if key != "step":
                self._writer.add_scalar(key, value, row["step"])
        self._writer.flush()

    def _finish(self, seconds: float, steps: int) -> RunResult:
        self.runtime.barrier()  # rank 0 has written the last metrics
        rows = run_folder.read(self.out)
        final = rows[-1] if rows else {}
        eval_key = "test_error" if "test" in self.eval_loaders else "val_error"
        plot = self.out / "curves.png"
        finished = self.step >= self.total
        if self.runtime.is_main:
            error_curves(
                {self.config.model: rows},
                plot,
                eval_key=eval_key,
                title=f"{self.config.model}, {self.config.recipe}: training (dashed), {eval_key.split('_')[0]} (solid)",
            )
            summary = {
                "model": self.config.model,
                "recipe": self.config.recipe,
                "data": self.data.source,
                "steps": self.step,
                "seconds": seconds,
                "steps_this_session": steps,
                "final": final,
                "best_error": self.schedule.best_eval,
                "skipped_images": self.data.skipped,
                "device": str(self.runtime.device),
                "world": self.runtime.world,
                "torch": torch.__version__,
            }
            if finished:  # a finished run, and only a finished one, has a summary
                run_folder.write_summary(self.out, summary)
        return RunResult(
            self.out,
            eval_key.split("_")[0],
            final.get(eval_key, math.nan),
            final.get(eval_key.replace("error", "top5_error"), math.nan),
            self.schedule.best_eval,
            self.step,
            seconds,
            plot,
            self.runtime.rank,
            finished,
        )
