"""The training loop: get a batch, forward under autocast, backward, step, log, evaluate, checkpoint.

`train()` is the Python face of `resnet train`. A run folder holds `config.yaml` (the resolved
config), `metrics.jsonl` (one row per evaluation), `last.pt` and `best.pt` (checkpoints),
`curves.png` (Fig. 6 style) and `summary.json`.
"""

from __future__ import annotations

import errno
import json
import math
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from .. import checkpoint
from ..analysis.diagnostics import gradient_norms, layer_responses
from ..analysis.plots import error_curves
from ..config import TrainConfig, from_dict, resolve, to_dict
from ..data.augment import Normalize
from ..data.load import Data, load_data
from ..data.loader import StreamLoader, TensorLoader
from ..errors import RunError, UsageError
from ..models import create_model, get_spec
from .evaluate import evaluate_batches
from .finetune import Part, apply_freezing, parts, read_source, source_normalize, start_from
from .modes import freeze_batch_norm
from .progress import Progress
from .runtime import setup, teardown
from .schedule import LRSchedule

NORMALIZE_SAMPLE = 512  # streamed images whose statistics give the normalization
SYNC_EVERY = 10  # steps between reads of the running loss and error
DIAGNOSTIC_BATCH = 128  # images of the fixed batches that diagnostics are measured on
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
) -> RunResult:
    """Train `model` on `data` with `recipe` (a shipped recipe's name or a YAML file), writing the run to `out`.

    `overrides` ("key=value" strings or a mapping) change recipe keys, e.g. {"optimizer.lr": 0.05}.
    `iters` or `epochs` set the length (milestones scale with it). With `resume`, the run in `out`
    continues from its last checkpoint, exactly. An existing run in `out` is replaced only with `force`.
    `stop_after` pauses the run after that many iterations of this session, with a checkpoint to resume
    from (e.g. for time-limited cluster jobs); the result's `finished` is then False.
    """
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise UsageError("--resume needs --out, the folder of the run to continue")
        state = checkpoint.load(out / "last.pt")
        config = from_dict(TrainConfig, state["config"])
        if model is not None and model != config.model:
            raise UsageError(f"{out / 'last.pt'} is a checkpoint of {config.model}, not {model}")
    else:
        state = None
        fields = {"model": model, "data.source": data, "device": device}
        config = resolve(recipe, overrides, **fields, iters=iters, epochs=epochs)
        get_spec(config.model)  # an unknown model fails before any work
        if out is None:
            out = Path("runs") / f"{config.model}-{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (out / "last.pt").exists() and not force:
            raise UsageError(f"{out} already holds a run: --resume continues it, --force replaces it")
    try:
        return Trainer(config, out, state, progress).run(stop_after)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise RunError(f"disk full while writing {e.filename or out}; the last checkpoint is intact") from None
        raise
    finally:
        teardown()


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
            self.normalize = Normalize(**state["normalize"])
        elif self.source and tuning.normalize == "source":
            self.normalize = source_normalize(self.source)
        else:
            self.normalize = self._fit_normalize(self.data)
        self.model = self._build_model()
        self.parts = parts(self.model, tuning) if tuning.source else [Part([self.model], 1.0)]
        self.optimizer = self._build_optimizer()
        self.train_loader = self._loader("train", train=True)
        self.eval_loaders = {s: self._loader(s, train=False) for s in self.data.split_names if s != "train"}
        self.total = config.iters or max(1, round(config.epochs * self.train_loader.steps_per_epoch))
        self.schedule = LRSchedule(
            config.schedule, self.optimizer.param_groups[0]["initial_lr"], self.total, get_spec(config.model).depth
        )
        self._unfreeze_steps = {round(p.unfreeze_at * self.total) for p in self.parts if 0 < p.unfreeze_at <= 1}
        self.scaler = torch.amp.GradScaler(self.runtime.device.type, enabled=config.precision == "fp16")
        self.step, self.best, self.skipped_steps = 0, math.inf, 0
        self.interval = {"loss": 0.0, "wrong": 0.0, "count": 0}
        # Running sums on the device (loss, wrong) and the first non-finite step: read every
        # SYNC_EVERY steps, so that GPU steps do not wait for the host.
        self._sums = torch.zeros(2, dtype=torch.float64, device=self.runtime.device)
        self._count = 0
        self._nonfinite = torch.full((), -1, dtype=torch.int64, device=self.runtime.device)
        if state is not None:
            self._restore(state)
        self.forward = self._compiled(self.model)
        self.autocast = self.runtime.autocast(config.precision)
        if config.log.tensorboard:
            tensorboard_writer()  # a missing package stops the run before it starts

    # -- set-up -----------------------------------------------------------------------------

    def _fit_normalize(self, data: Data) -> Normalize:
        per_pixel = self.config.data.normalize == "pixel-mean"
        if data.mode == "tensor":
            return Normalize.fit(data.arrays["train"].images, per_pixel)
        sample = data.files["train"][:: max(1, data.size("train") // NORMALIZE_SAMPLE)]
        identity = Normalize(torch.zeros(3, 1, 1), torch.ones(3, 1, 1))
        loader = StreamLoader(
            data.layout, sample, self.config.data, batch_size=64, device="cpu", normalize=identity, train=False
        )
        return Normalize.fit(torch.cat([x for x, _ in loader.eval_batches()]), per_pixel=False)

    def _build_model(self) -> nn.Module:
        cfg, runtime = self.config, self.runtime
        options = dict(cfg.model_options)
        if "in_features" in get_spec(cfg.model).options:  # vector models take the data's input size
            options.setdefault("in_features", math.prod(self.data.arrays["train"].images.shape[1:]))
        self.model_options = options  # as built: what a checkpoint needs to rebuild the network
        model = create_model(cfg.model, num_classes=len(self.data.classes), **options)
        if self.source:
            start_from(model, self.source)
        if cfg.sync_bn and runtime.world > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(
            runtime.device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format
        )
        return model

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config.optimizer
        groups = []
        for part in self.parts:
            decay = [p for p in part.parameters() if p.ndim > 1 or cfg.decay_norm_and_bias]
            no_decay = [p for p in part.parameters() if p.ndim <= 1 and not cfg.decay_norm_and_bias]
            groups += [
                {"params": params, "weight_decay": wd, "lr_scale": part.lr_scale}
                for params, wd in ((decay, cfg.weight_decay), (no_decay, 0.0))
                if params
            ]
        # the linear scaling rule (Goyal et al. 2017): lr grows with the global batch
        lr = cfg.lr * (self.config.batch_size / cfg.reference_batch if cfg.scale_lr else 1)
        fused = self.runtime.device.type == "cuda"
        if cfg.name == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), fused=fused)
        else:
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, fused=fused)
        for group in optimizer.param_groups:
            group["initial_lr"] = lr
        return optimizer

    def _loader(self, split: str, train: bool):
        cfg, runtime = self.config, self.runtime
        # batch_size is the global batch: each of the `world` processes takes its slice of it, so a run
        # sees the same batches (and resumes) whatever the number of processes.
        local = cfg.batch_size // runtime.world
        common = dict(
            batch_size=local if train else max(local, 256),
            device=runtime.device,
            normalize=self.normalize,
            seed=cfg.seed,
            rank=runtime.rank,
            world=runtime.world,
            channels_last=cfg.channels_last,
        )
        if self.data.mode == "tensor":
            augment = cfg.data.augment if train else "none"
            return TensorLoader(self.data.arrays[split], augment=augment, pad=cfg.data.pad, train=train, **common)
        return StreamLoader(self.data.layout, self.data.files[split], cfg.data, train=train, **common)

    def _compiled(self, model: nn.Module):
        if self.runtime.world > 1:
            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if self.config.compile == "none":
            return model
        return torch.compile(model, mode=None if self.config.compile == "default" else self.config.compile)

    # -- checkpoints ------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "model_name": self.config.model,
            "model_options": self.model_options,
            "classes": self.data.classes,
            "normalize": self.normalize.state_dict(),
            "image_size": self.config.data.image_size,
            "eval_resize": self.config.data.eval_resize if self.data.mode == "stream" else 1.0,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": self.best,
            "interval": dict(self.interval),
            "skipped_steps": self.skipped_steps,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            },
            "config": to_dict(self.config),
        }

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.best, self.skipped_steps = state["step"], state["best"], state["skipped_steps"]
        self.interval = dict(state["interval"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        np_state = np.random.get_state()
        np.random.set_state((np_state[0], state["rng"]["numpy"].numpy().astype(np.uint32), *np_state[2:]))

    def save(self, name: str) -> None:
        if self.runtime.is_main:
            checkpoint.save(self._state(), self.out / name)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop_after: int | None = None) -> RunResult:
        cfg, runtime = self.config, self.runtime
        end = min(self.total, self.step + stop_after) if stop_after else self.total
        if runtime.is_main:
            self._prepare_folder()
        every = self.eval_interval()
        start_time, start_step = time.perf_counter(), self.step
        if self.step == 0 and cfg.log.diagnostics:
            self._diagnose()
        with Progress(self.total, self.step, enabled=self.show_progress and runtime.is_main) as bar:
            self.model.train()
            self._freeze()
            for x, y in islice(self.train_loader.batches(self.step), end - self.step):
                lr = self.schedule(self.step)
                self.train_step(x, y, lr)
                self.step += 1
                if self.step in self._unfreeze_steps:
                    self._freeze()
                    bar.log(f"step {self.step}: unfreezing the next part of the backbone")
                # at every interval and at the end, but not twice in the last half interval
                evaluate = self.step == self.total or (self.step % every == 0 and self.total - self.step >= every / 2)
                save = cfg.log.checkpoint_every and self.step % cfg.log.checkpoint_every == 0
                if evaluate or save or self.step % SYNC_EVERY == 0:
                    self._sync(bar, lr)
                if evaluate:
                    self._evaluate_and_save(bar, lr)
                elif save:
                    self.save("last.pt")
            if self.step < self.total:
                self._sync(bar, self.schedule(self.step))
                self.save("last.pt")
                bar.log(f"paused at step {self.step} of {self.total}: --resume continues")
        return self._finish(time.perf_counter() - start_time, self.step - start_step)

    def eval_interval(self) -> int:
        """Iterations between evaluations: `log.every`, else `log.evals` spread over the run, stretched
        so that evaluating stays under `log.eval_share` of the run's work (the paper's every 1,000
        iterations of 64,000 is 2.6%; `--iters 200` on CIFAR-10 evaluates once, at the end)."""
        log = self.config.log
        if log.every:
            return log.every
        images = sum(self.data.size(split) for split in self.eval_loaders)
        least = EVAL_COST * images * (1 - log.eval_share) / (log.eval_share * self.config.batch_size)
        return max(1, self.total // log.evals, math.ceil(least))

    def _freeze(self) -> None:
        """Freeze what should be frozen at this step: fine-tuning's frozen parts, and BN if asked."""
        apply_freezing(self.parts, self.step / self.total)
        if self.config.freeze_bn:
            freeze_batch_norm(self.model)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        """One iteration on the batch (x, y) at learning rate `lr`: forward under autocast, loss,
        backward, optimizer step; the loss and errors are added to the running sums on the device."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        # skip mode: a skipped step must not leave its batch statistics in the BN running averages
        buffers = [b.clone() for b in self.model.buffers()] if cfg.nonfinite == "skip" else None
        with self.autocast:
            logits = self.forward(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        self._backward_and_step(loss, buffers)
        wrong = (logits.detach().argmax(1) != y).sum()
        self._sums += torch.stack([loss.detach().double() * len(y), wrong.double()])
        self._count += len(y)  # on the host: a tensor made from it would be a copy that waits for the GPU

    def _backward_and_step(self, loss: torch.Tensor, buffers: list[torch.Tensor] | None) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if buffers is not None and not torch.isfinite(loss):  # a host sync, only in skip mode
            self.skipped_steps += 1
            for buffer, saved in zip(self.model.buffers(), buffers):
                buffer.copy_(saved)
            return
        self._nonfinite = torch.where(
            (self._nonfinite < 0) & ~torch.isfinite(loss.detach()), self.step + 1, self._nonfinite
        )
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _sync(self, bar: Progress, lr: float) -> None:
        """Read the device's running sums: stop at a non-finite loss, end the §4.2 warm-up, update the bar."""
        bad = int(self._nonfinite)
        if bad >= 0:
            raise RunError(
                f"the loss is not finite at step {bad}; stopped (the last good checkpoint is "
                f"{self.out / 'last.pt'}; --set nonfinite=skip skips such steps)"
            )
        (loss, wrong), count = self._sums.tolist(), self._count
        self._sums.zero_()
        self._count = 0
        self.interval = {
            "loss": self.interval["loss"] + loss,
            "wrong": self.interval["wrong"] + wrong,
            "count": self.interval["count"] + int(count),
        }
        error = self.interval["wrong"] / max(1, self.interval["count"])
        if self.schedule.observe(self.step, error):
            bar.log(
                f"step {self.step}: training error {error:.1%}, below {self.config.schedule.warmup_until_error:.0%}: "
                f"the warm-up is over, learning rate {self.schedule(self.step):g}"
            )
        bar.update(self.step, loss=loss / max(1, count), error=error, images=int(count) * self.runtime.world)

    def _evaluate_and_save(self, bar: Progress, lr: float) -> None:
        row = {
            "step": self.step,
            "epoch": round(self.step / self.train_loader.steps_per_epoch, 3),
            "lr": lr,
            "train_loss": self.interval["loss"] / max(1, self.interval["count"]),
            "train_error": self.interval["wrong"] / max(1, self.interval["count"]),
        }
        for split, loader in self.eval_loaders.items():
            metrics = evaluate_batches(
                self.model,
                loader.eval_batches(),
                len(self.data.classes),
                autocast=self.autocast,
                reduce=self.runtime.all_reduce,
            )
            row.update(
                {
                    f"{split}_loss": metrics["loss"],
                    f"{split}_error": metrics["top1_error"],
                    f"{split}_top5_error": metrics["top5_error"],
                }
            )
        row["images_per_s"], row["elapsed_s"] = bar.rate(), bar.elapsed()
        if self.skipped_steps:
            row["skipped_steps"] = self.skipped_steps
        self.interval = {"loss": 0.0, "wrong": 0.0, "count": 0}
        selection = row.get("val_error", row.get("test_error"))
        if self.schedule.observe_eval(selection):
            bar.log(
                f"step {self.step}: no better error in {self.config.schedule.patience} evaluations: "
                f"learning rate divided by {1 / self.config.schedule.gamma:g}"
            )
        improved = selection < self.best
        self.best = min(self.best, selection)
        # Logs first, checkpoints last: a resumed run drops log rows newer than its checkpoint.
        if self.config.log.diagnostics:
            self._diagnose()
        if self.runtime.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if self.config.log.tensorboard:
                self._tensorboard(row)
        self.save("last.pt")
        if improved:
            self.save("best.pt")
        evals = " · ".join(f"{s} error {100 * row[f'{s}_error']:.2f}%" for s in self.eval_loaders)
        bar.log(
            f"step {self.step}/{self.total} · epoch {row['epoch']:.1f} · lr {lr:.4g} · "
            f"train error {100 * row['train_error']:.2f}% · {evals}"
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
        with open(self.out / "diagnostics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _prepare_folder(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(self.config), sort_keys=False))
        # Resuming: rows written after the checkpoint (by the interrupted process) are dropped.
        for name in ("metrics.jsonl", "diagnostics.jsonl"):
            rows = [r for r in read_metrics(self.out / name) if r["step"] <= self.step] if self.step else []
            (self.out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    def _tensorboard(self, row: dict) -> None:
        if not hasattr(self, "_writer"):
            self._writer = tensorboard_writer()(self.out / "tensorboard")
        for key, value in row.items():
            if key != "step":
                self._writer.add_scalar(key, value, row["step"])
        self._writer.flush()

    def _finish(self, seconds: float, steps: int) -> RunResult:
        self.runtime.barrier()  # rank 0 has written the last metrics
        rows = read_metrics(self.out / "metrics.jsonl")
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
                "best_error": self.best,
                "skipped_images": self.data.skipped,
                "device": str(self.runtime.device),
                "world": self.runtime.world,
                "torch": torch.__version__,
            }
            if finished:  # a finished run, and only a finished one, has a summary
                (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return RunResult(
            self.out,
            eval_key.split("_")[0],
            final.get(eval_key, math.nan),
            final.get(eval_key.replace("error", "top5_error"), math.nan),
            self.best,
            self.step,
            seconds,
            plot,
            self.runtime.rank,
            finished,
        )


def tensorboard_writer():
    """TensorBoard's SummaryWriter class; UsageError if the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError("log.tensorboard=true needs the tensorboard package (pip install tensorboard)") from None
    return SummaryWriter


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl file (an unfinished last line is ignored)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows
