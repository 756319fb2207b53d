"""The training loop: get a batch, forward under autocast, backward, step, log, evaluate, checkpoint.

`Trainer` is one run (api.py's `train()` makes it). A run folder holds `config.yaml` (the resolved
config), `metrics.jsonl` (one row per evaluation), `last.pt` and `best.pt` (checkpoints),
`curves.png` (Fig. 6 style), `summary.json`, and `skipped-images.txt` when unreadable images were left out.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import torch

from .. import checkpoint, run_folder
from ..config import TrainConfig, to_dict
from ..data.augment import Normalize
from ..data.loader import fit_normalize, make_loader, reraised
from ..data.mixing import Mixing
from ..data.sources import load_data
from ..errors import Stopped, UsageError
from ..models import get_spec
from .build import build_model, build_optimizer, forward_pass, peak_lr, rng_state, set_rng_state
from .ema import EMA
from .evaluate import split_metrics
from .finetune import apply_freezing, parts, read_pretrained, source_normalize
from .logs import RunLogs, RunResult
from .loss import training_loss
from .meter import Meter, NonFiniteGuard
from .modes import freeze_batch_norm
from .progress import Progress
from .runtime import hardware, resolve_precision, setup
from .schedule import EVAL_COST, LRSchedule, eval_interval, evaluates, evaluations
from .stop import StopRequest, format_duration

SYNC_EVERY = 10  # steps between reads of the running loss and error (and the non-finite check)
FORECAST_STEPS = 20  # iterations timed before the run says how long the rest will take


class Trainer:
    """One run of `config`, from scratch or from a checkpoint `state`."""

    def __init__(self, config: TrainConfig, out: Path, state: dict | None = None, progress: bool = True) -> None:
        self.config, self.out, self.show_progress = config, out, progress
        self.runtime = setup(config.device, deterministic=config.deterministic)
        if config.sync_bn and self.runtime.world > 1 and self.runtime.device.type != "cuda":
            raise UsageError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU)")
        if config.batch_size % self.runtime.world:
            raise UsageError(f"batch_size={config.batch_size} is not divisible by the {self.runtime.world} processes")
        torch.manual_seed(config.seed)
        torch.backends.cudnn.benchmark = not config.deterministic
        self.data = load_data(config.data)
        if state is not None and state["classes"] != self.data.classes:
            raise UsageError(
                f"the checkpoint's {len(state['classes'])} classes are not the data's {len(self.data.classes)}"
            )
        tuning = config.finetune
        pretrained = tuning.source and not state  # a resumed run's weights are in its checkpoint
        self.source = read_pretrained(tuning, config.model, config.model_options) if pretrained else None
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
        self.total = config.iters or max(1, round(config.epochs * self.train_loader.steps_per_epoch))
        groups, self.parts = parts(self.model, tuning, self.total)  # the parameter groups, the parts frozen for a while
        self.optimizer = build_optimizer(config, groups, self.runtime.device)
        self.schedule = LRSchedule(config.schedule, peak_lr(config), self.total, get_spec(config.model).depth)
        self.ema = EMA(self.model, config.ema) if config.ema.decay else None
        self.evaluated = self.ema.module if self.ema else self.model  # the network evaluated, selected and saved
        self.scaler = torch.amp.GradScaler(self.runtime.device.type, enabled=config.precision == "fp16")
        self.step = 0  # the step to do next
        self._saved_at, self._save_seconds = time.monotonic(), 0.0  # the last checkpoint: when, and the longest
        self._skipped_before: list[str] = []  # unreadable streamed files met by the sessions before this one
        self._session: dict | None = None  # this session's row of sessions.jsonl, written at each checkpoint
        self._session_start = 0.0
        self.meter = Meter(self.runtime.device)
        self.guard = NonFiniteGuard(config.nonfinite, self.model, self.runtime.device)
        if state is not None:
            self._restore(state)
        self.forward = forward_pass(self.model, config, self.runtime)
        self.autocast = self.runtime.autocast(config.precision)
        self.logs = RunLogs(out, config, self.runtime.is_main)

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

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop_after: int | None = None, time_limit: float | None = None) -> RunResult:
        """Train to the end (or `stop_after` more steps), evaluating and checkpointing on the way. A
        signal (SIGTERM, SIGINT, SIGUSR1) or `time_limit` seconds stop it after a step, with a
        checkpoint, by raising `Stopped`."""
        cfg, runtime = self.config, self.runtime
        end = min(self.total, self.step + stop_after) if stop_after else self.total
        with run_folder.lock(self.out) if runtime.is_main else nullcontext(), StopRequest(time_limit) as stop:
            if runtime.is_main:
                logs = (run_folder.METRICS, run_folder.DIAGNOSTICS, run_folder.SESSIONS)
                run_folder.prepare(self.out, to_dict(cfg), self.step, logs)
                self._session, self._session_start = self._session_record(), time.monotonic()
                # a resumed run of streamed files keeps those its earlier sessions met
                self._skipped_before = run_folder.read_skipped(self.out) if self.step else []
                self._write_skipped()
            images = sum(self.data.size(split) for split in self.eval_loaders) * (2 if cfg.ema.decay else 1)
            every = eval_interval(cfg.log, self.total, cfg.batch_size, images)
            start_time, start_step = time.perf_counter(), self.step
            if self.step == 0:
                self._diagnostics()
            if time_limit:
                self.save("last.pt")  # measures how long a checkpoint takes: the limit must leave time for one
            # an evaluation in training steps, until one is timed: a forward of each image evaluated, and
            # with diagnostics a training step and a forward of their two batches
            cost = EVAL_COST * images + (cfg.log.diagnostics_batch * (1 + EVAL_COST) if cfg.log.diagnostics else 0)
            shown = self.show_progress and runtime.is_main
            with Progress(self.total, self.step, enabled=shown, eval_steps=cost / cfg.batch_size) as bar:
                bar.log(self.plan(every))
                for step in self.steps(end, log=bar.log):
                    if step == start_step + 1:
                        bar.warm(step)
                    evaluate = evaluates(step, every, self.total)
                    save = (cfg.log.checkpoint_every and step % cfg.log.checkpoint_every == 0) or (
                        cfg.log.checkpoint_minutes
                        and time.monotonic() - self._saved_at >= 60 * cfg.log.checkpoint_minutes
                    )
                    if evaluate or save or step % SYNC_EVERY == 0:
                        self._sync(bar)
                    if evaluate:
                        self._evaluate_and_save(bar, every)
                    elif save:
                        self.save("last.pt")
                    # after this step's evaluation: the forecast is of the steps after it
                    if step == start_step + FORECAST_STEPS and end - step > FORECAST_STEPS:
                        left = evaluations(step, end, every, self.total)
                        bar.log(bar.forecast(step, end, left, runtime.device.type))
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

    def steps(self, end: int | None = None, log=print):
        """Train from the current step to `end` (default: the end of the run), yielding the number of
        each step done: batch, learning rate, forward, backward, update (and fine-tuning's unfreezing,
        announced through `log`). What the loop measures is read by `_sync`; `run` adds evaluations
        and checkpoints. Benchmarks time this iterator: the loop the product runs."""
        end = self.total if end is None else end
        self.model.train()
        self._freeze()
        for x, y in islice(self._batches(), max(0, end - self.step)):
            self.train_step(x, y, self.schedule(self.step))
            self.step += 1
            if self.ema:
                self.ema.update(self.model, self.step)
            if any(part.unfreeze_at == self.step for part in self.parts):
                self._freeze()
                log(f"step {self.step}: unfreezing the next part of the backbone")
            yield self.step

    def _batches(self):
        """The training batches from this step on. An unreadable streamed image stops the run with a
        checkpoint of the steps done (one UsageError line naming the file): hours of work are kept."""
        start = self.step

        def stopped(e: UsageError) -> UsageError:
            if self.step == start or not self.runtime.is_main or self.runtime.world > 1:
                return e
            self.save("last.pt")
            return UsageError(
                f"{e}; the run stopped at step {self.step} with a checkpoint: replace or remove the file, "
                f"then resume with: resnet train --out {self.out} --resume"
            )

        return reraised(self.train_loader.batches(self.step), stopped)

    def _freeze(self) -> None:
        """Freeze what should be frozen at this step: fine-tuning's frozen parts, and BN if asked."""
        apply_freezing(self.parts, self.step)
        if self.config.freeze_bn:
            freeze_batch_norm(self.model)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        """One iteration on the batch (x, y) at learning rate `lr`: forward under autocast, loss,
        backward, optimizer step (unless the non-finite guard drops it); the meter adds the loss and errors."""
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

    # -- evaluations and checkpoints --------------------------------------------------------

    def _evaluate_and_save(self, bar: Progress, every: int) -> None:
        """An evaluation: the metrics row, the best error, the logs, then the checkpoints, timed for the
        forecasts; its line ends with the time to the end of the run."""
        start = time.perf_counter()
        row = self.evaluate(bar)
        improved = self._record(row.get("val_error", row.get("test_error")), bar)
        # Logs first, checkpoints last: a resumed run drops log rows newer than its checkpoint.
        self._diagnostics()
        self.logs.metrics(row)
        self._checkpoint(improved)
        bar.evaluated(time.perf_counter() - start)
        evals = " · ".join(f"{s} error {100 * row[f'{s}_error']:.2f}%" for s in self.eval_loaders)
        line = (
            f"step {self.step}/{self.total} · epoch {row['epoch']:.1f} · lr {row['lr']:.4g} · "
            f"train error {100 * row['train_error']:.2f}% · {evals}"
        )
        if self.step < self.total:
            left = bar.remaining(self.step, self.total, evaluations(self.step, self.total, every, self.total))
            line += f" · ETA {format_duration(left)}"
        bar.log(line)

    def evaluate(self, bar: Progress) -> dict:
        """The metrics row of this step: the learning rate of the last step, the training loss and error
        since the last row (the meter starts again), and each evaluated split's loss and errors."""
        row = {
            "step": self.step,
            "epoch": round(self.step / self.train_loader.steps_per_epoch, 3),
            "lr": self.schedule(self.step - 1),
            "train_loss": self.meter.mean_loss,
            "train_error": self.meter.error,
        }
        raw = self.model if self.ema else None
        reduce = self.runtime.all_reduce
        classes = len(self.data.classes)
        row |= split_metrics(self.evaluated, self.eval_loaders, classes, autocast=self.autocast, reduce=reduce, raw=raw)
        row["images_per_s"], row["elapsed_s"] = bar.rate(), bar.elapsed()
        if self.guard.skipped:
            row["skipped_steps"] = self.guard.skipped
        self.meter.reset()
        return row

    def _diagnostics(self) -> None:
        """With log.diagnostics, the gradient norms and layer responses of now in diagnostics.jsonl."""
        log = self.config.log
        if log.diagnostics:
            self.logs.diagnostics(self.step, self.model, self.train_loader, self.eval_loaders, log.diagnostics_batch)

    def _record(self, error: float, bar: Progress) -> bool:
        """Give the schedule the selection error (validation, else test), which keeps the best one:
        True when this is the best so far."""
        improved, plateau = self.schedule.observe_eval(error)
        if plateau:
            bar.log(
                f"step {self.step}: no better error in {self.config.schedule.patience} evaluations: "
                f"learning rate divided by {1 / self.config.schedule.gamma:g}"
            )
        return improved

    def _checkpoint(self, improved: bool) -> None:
        """last.pt, and best.pt (the same file under a second name) when the evaluation error is the best so far."""
        self.save("last.pt")
        if improved and self.runtime.is_main:
            checkpoint.duplicate(self.out / "last.pt", self.out / "best.pt")

    def save(self, name: str) -> None:
        """The checkpoint `name` in the run folder (written by the main process), timed."""
        start = time.monotonic()
        if self.runtime.is_main:
            checkpoint.save(self._state(), self.out / name)
            self._write_skipped()
            if self._session:
                row = {"step": self.step, **self._session, "seconds": round(start - self._session_start, 1)}
                run_folder.append(self.out, row, run_folder.SESSIONS)
        self._saved_at = time.monotonic()
        self._save_seconds = max(self._save_seconds, self._saved_at - start)

    def _session_record(self) -> dict:
        """The row of sessions.jsonl of the session starting now (its `step` and `seconds` added when written)."""
        cfg, runtime = self.config, self.runtime
        return {
            "from": self.step,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(runtime.device),
            "precision": resolve_precision(cfg.precision, runtime.device),
            "world": runtime.world,
            "torch": torch.__version__,
        }

    def _skipped_images(self) -> list[str]:
        """The unreadable images left out (data.skip_bad_images): those of a decoded data set, and the
        streamed files met so far in this session and those before."""
        loaders = (self.train_loader, *self.eval_loaders.values())
        return sorted(set(self.data.skipped).union(self._skipped_before, *(loader.skipped for loader in loaders)))

    def _write_skipped(self) -> None:
        run_folder.write_skipped(self.out, self._skipped_images())

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

    # -- stopping, and the end of a session -------------------------------------------------

    def _stop_requested(self, stop: StopRequest, step: int) -> bool:
        """Whether to stop now (see StopRequest.step_done); the processes of a distributed run agree
        every SYNC_EVERY steps, so that all stop at the same step."""
        wanted = stop.step_done(self._save_seconds)
        return (self.runtime.world == 1 or step % SYNC_EVERY == 0) and self.runtime.any(wanted)

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

    def _finish(self, seconds: float, steps: int) -> RunResult:
        """The end of this session: curves.png, summary.json when the run is finished, the RunResult."""
        self.runtime.barrier()  # rank 0 has written the last metrics
        rows = run_folder.read(self.out)
        summary = {
            "model": self.config.model,
            "recipe": self.config.recipe,
            "data": self.data.source,
            "steps": self.step,
            "seconds": seconds,
            "steps_this_session": steps,
            "final": rows[-1] if rows else {},
            "best_error": self.schedule.best_eval,
            "skipped_images": len(self._skipped_images()),  # listed by the last checkpoint's _write_skipped
            "device": str(self.runtime.device),
            "world": self.runtime.world,
            "torch": torch.__version__,
        }
        split = "test" if "test" in self.eval_loaders else "val"
        return self.logs.finish(rows, summary, split, self.runtime.rank, finished=self.step >= self.total)
