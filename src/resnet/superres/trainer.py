"""Training a super-resolution network: random patches, Adam, PSNR and SSIM on held-out images
next to plain bicubic upscaling.

`train()` is the Python face of `resnet superres train`. A run folder holds `config.yaml`,
`metrics.jsonl` (one row per evaluation, the first before any training), `last.pt` and `best.pt`
(by PSNR), `psnr.png` (PSNR against iterations, bicubic dashed) and `summary.json`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint, run_folder
from ..config import apply_override, from_dict, parse_overrides, to_dict
from ..errors import RunError, Stopped, UsageError
from ..models import count_parameters, create_model, get_spec, list_models
from ..models.superres import SCALES
from ..train.progress import Progress
from ..train.runtime import setup
from ..train.stop import StopRequest, parse_time_limit
from .data import HeldOutImage, PatchSampler, check_sizes, held_out_images, load_images, to_tensor
from .metrics import CHANNELS, SSIM_WINDOW, psnr, ssim
from .plots import psnr_curves

TASK = "superres"  # marks a checkpoint of this module
# --quick: a few minutes on a CPU, on the 32×32 example images shipped in the package (what 48-pixel patches refuse)
EXAMPLES = Path(__file__).parents[1] / "assets" / "examples"
QUICK = {"patch_size": 32, "evals": 10}
QUICK_ITERS = 200
CHOICES = {"loss": ("l1", "l2"), "schedule": ("cosine", "constant"), "metric_channel": CHANNELS}
EVAL_BATCH = 64


@dataclass
class SuperResConfig:
    model: str = "vdsr"
    model_options: dict = field(default_factory=dict)  # the network's options (not scale), e.g. {width: 32}
    scale: int = 2  # 2 or 4
    data: str | None = None  # a folder or .tar(.gz) of high-resolution images
    patch_size: int = 48  # side of the high-resolution training patch (VDSR 41, EDSR 96)
    batch_size: int = 16
    iters: int = 2000
    lr: float = 1e-4  # Adam, β = (0.9, 0.999), as EDSR
    loss: str = "l1"  # l1 (EDSR) | l2 (VDSR)
    schedule: str = "cosine"  # cosine: lr decays to zero over the run | constant
    augment: bool = True  # random flips and 90° rotations of the patches
    evals: int = 20  # evaluations over the run (the curve's points), plus one before training
    eval_images: int = 200  # held-out images measured, evenly spaced over the test split (0: all)
    test_fraction: float = 0.1  # held out when the source has no test/ (or val/) folder
    metric_channel: str = "y"  # y: the luma, as is customary | rgb
    seed: int = 0
    device: str = "auto"


@dataclass
class SuperResResult:
    """What a finished run reports: its folder, the final metrics beside bicubic's, and the plot."""

    out: Path
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    best_psnr: float
    steps: int
    seconds: float
    plot: Path


def resolve(overrides: list[str] | dict | None = None, **fields) -> SuperResConfig:
    """The config of `overrides` ("key=value" strings or a mapping) and then `fields`, every value checked."""
    raw: dict = {}
    items = parse_overrides(overrides).items()
    for key, value in items:
        apply_override(raw, key, value)
    raw.update({k: v for k, v in fields.items() if v is not None})
    config = from_dict(SuperResConfig, raw)
    check(config)
    return config


def check(cfg: SuperResConfig) -> None:
    """Range and choice checks that the types alone do not express."""
    models = list_models("superres")
    if cfg.model not in models:
        get_spec(cfg.model)  # an unknown name: the registry's message
        raise UsageError(f"{cfg.model} is not a super-resolution model; choose one of: {', '.join(models)}")
    if cfg.scale not in SCALES:
        raise UsageError(f"scale {cfg.scale} is not supported; choose one of: {', '.join(map(str, SCALES))}")
    if "scale" in cfg.model_options:
        raise UsageError("set the scale with --scale, not in model_options")
    for key, choices in CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise UsageError(f"{key}={getattr(cfg, key)!r} is not one of: {', '.join(choices)}")
    for key in ("batch_size", "iters", "evals", "lr"):
        if not getattr(cfg, key) > 0:
            raise UsageError(f"{key} must be positive, not {getattr(cfg, key)}")
    if cfg.eval_images < 0:
        raise UsageError(f"eval_images must not be negative, not {cfg.eval_images}")
    if not 0 < cfg.test_fraction < 1:
        raise UsageError(f"test_fraction must be in (0, 1), not {cfg.test_fraction}")
    # SSIM's 11×11 window must fit inside the patch once `scale` border pixels are cropped.
    smallest = SSIM_WINDOW + 2 * cfg.scale
    if cfg.patch_size % cfg.scale or cfg.patch_size < smallest:
        raise UsageError(
            f"patch_size={cfg.patch_size} must be a multiple of the scale {cfg.scale} and at least {smallest}"
        )


def train(
    model: str | None = None,
    data: str | Path | None = None,
    scale: int | None = None,
    out: str | Path | None = None,
    overrides: list[str] | dict | None = None,
    *,
    iters: int | None = None,
    device: str | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    time_limit: str | float | None = None,
    quick: bool = False,
) -> SuperResResult:
    """Train super-resolution network `model` (vdsr, the default, or edsr_baseline) ×`scale` (2) on the
    images under `data`. `quick`: 200 iterations (unless `iters`) of 32-pixel patches, on the example
    images shipped in the package unless `data`: a check that training works, in minutes on a CPU.

    `overrides` ("key=value" strings or a mapping) set SuperResConfig keys, e.g. {"lr": 1e-3}. The run
    is written to `out`; an existing run there is replaced only with `force`; with `resume` it continues
    from its last checkpoint (its own settings; `device` may change), to the same weights as a run that
    was never stopped. Returns the final PSNR and SSIM on held-out images beside those of bicubic
    upscaling. `time_limit` and the signals SIGTERM, SIGINT, SIGUSR1 stop it with a checkpoint, as in
    `resnet.train` (raising `resnet.errors.Stopped`).
    """
    limit = parse_time_limit(time_limit)
    if resume:
        out, state = run_folder.resume(out)
        if state.get("task") != TASK:
            raise UsageError(f"{out / run_folder.LAST} is not a checkpoint of a super-resolution run")
        cfg = from_dict(SuperResConfig, state["config"])
        if device:
            cfg.device = device
        if model is not None and model != cfg.model:
            raise UsageError(f"{out / run_folder.LAST} is a checkpoint of {cfg.model}, not {model}")
        return SuperResTrainer(cfg, out, progress, state).run(limit)
    if quick:
        data, iters, overrides = data or EXAMPLES, iters or QUICK_ITERS, {**QUICK, **parse_overrides(overrides)}
    if data is None:
        raise UsageError("--data is required: a folder or .tar(.gz) of high-resolution images (or --quick)")
    cfg = resolve(overrides, model=model, data=str(data), scale=scale, iters=iters, device=device)
    create_model(cfg.model, scale=cfg.scale, **cfg.model_options)  # bad options fail before any work
    out = run_folder.new(out, f"{cfg.model}-x{cfg.scale}", force)
    return SuperResTrainer(cfg, out, progress).run(limit)


class SuperResTrainer:
    """One run of `cfg`: data and held-out images are checked before the run folder is touched."""

    def __init__(self, cfg: SuperResConfig, out: Path, progress: bool = True, state: dict | None = None) -> None:
        self.cfg, self.out, self.show_progress = cfg, out, progress
        self.runtime = setup(cfg.device)
        torch.manual_seed(cfg.seed)
        splits = load_images(cfg.data, cfg.test_fraction, cfg.seed)
        check_sizes(splits.train, splits.train_names, cfg.patch_size, "training patch (--set patch_size=...)")
        check_sizes(splits.test, splits.test_names, cfg.patch_size, "training patch, which test images must fit")
        self.splits = splits
        self.model = create_model(cfg.model, scale=cfg.scale, **cfg.model_options).to(self.runtime.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        upscaled = self.model.input_is_upscaled
        self.sampler = PatchSampler(splits.train, cfg.patch_size, cfg.scale, upscaled, cfg.augment, cfg.seed)
        self.test = held_out_images(splits, cfg.scale, cfg.eval_images)
        bicubic = measure([t.bicubic for t in self.test], self.test, cfg.scale, cfg.metric_channel)
        self.bicubic = {"bicubic_psnr": bicubic["psnr"], "bicubic_ssim": bicubic["ssim"]}
        self.step, self.best, self.rows = 0, -math.inf, []
        self.losses: list[float] = []  # training losses since the last evaluation
        self._save_seconds = 0.0  # the longest checkpoint write: the time limit leaves room for one
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.sampler.rng.bit_generator.state = state["sampler_rng"]
            self.step, self.rows = state["step"], list(state["rows"])
            self.losses = list(state.get("losses", []))
            self.best = max(row["psnr"] for row in self.rows)

    def lr(self, step: int) -> float:
        if self.cfg.schedule == "constant":
            return self.cfg.lr
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * step / self.cfg.iters))

    def run(self, time_limit: float | None = None) -> SuperResResult:
        with run_folder.lock(self.out), StopRequest(time_limit) as stop:
            return self._run(stop)

    def _run(self, stop: StopRequest) -> SuperResResult:
        cfg, device = self.cfg, self.runtime.device
        run_folder.prepare(self.out, to_dict(cfg), self.step)
        if self.step == 0:
            self.rows = []  # a checkpoint of step 0 holds its first row, measured again below
        every = max(1, cfg.iters // cfg.evals)
        start, losses = time.perf_counter(), self.losses
        with Progress(cfg.iters, self.step, enabled=self.show_progress) as bar:
            if self.step == 0:
                self._evaluate(bar, 0, None)
            for step in range(self.step + 1, cfg.iters + 1):
                lr = self.lr(step - 1)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                x, y = (t.to(device) for t in self.sampler.batch(cfg.batch_size))
                self.model.train()
                prediction = self.model(x)
                loss = F.l1_loss(prediction, y) if cfg.loss == "l1" else F.mse_loss(prediction, y)
                if not torch.isfinite(loss):
                    raise RunError(f"the loss is not finite at step {step}; stopped (try a lower --set lr=...)")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
                self.step = step
                bar.update(step, loss=losses[-1], error=math.nan, images=cfg.batch_size)  # no error rate here
                if step % every == 0 or step == cfg.iters:
                    mean = sum(losses) / len(losses)
                    losses.clear()  # before the checkpoint the evaluation writes: a resumed run starts anew
                    self._evaluate(bar, step, mean, lr)
                if stop.step_done(self._save_seconds) and step < cfg.iters:
                    self._save("last.pt", step, self.rows[-1])
                    reason, code = stop.reason()
                    raise Stopped(
                        f"stopped by {reason} at step {step} of {cfg.iters}, with a checkpoint; "
                        f"resume with: resnet superres train --out {self.out} --resume",
                        code,
                    )
        return self._finish(time.perf_counter() - start)

    def _evaluate(self, bar: Progress, step: int, train_loss: float | None, lr: float | None = None) -> None:
        cfg = self.cfg
        inputs = [t.bicubic if self.model.input_is_upscaled else t.lr for t in self.test]
        metrics = measure(inputs, self.test, cfg.scale, cfg.metric_channel, self.model, self.runtime.device)
        row = {"step": step, "lr": lr, "train_loss": train_loss, **metrics, **self.bicubic}
        row["images_per_s"], row["elapsed_s"] = bar.rate(), bar.elapsed()
        self.rows.append(row)
        run_folder.append(self.out, row)
        improved = row["psnr"] > self.best
        self.best = max(self.best, row["psnr"])
        self._save("last.pt", step, row)
        if improved:
            checkpoint.duplicate(self.out / "last.pt", self.out / "best.pt")
        loss = "" if train_loss is None else f"train loss {train_loss:.4f} · "
        bar.log(
            f"step {step}/{cfg.iters} · {loss}PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f} "
            f"(bicubic {row['bicubic_psnr']:.2f} dB, {row['bicubic_ssim']:.4f})"
        )

    def _save(self, name: str, step: int, row: dict) -> None:
        payload = {
            "task": TASK,
            "model_name": self.cfg.model,
            "model_options": {**self.cfg.model_options, "scale": self.cfg.scale},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "rows": self.rows,
            "losses": list(self.losses),
            "step": step,
            "metrics": {k: row[k] for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")},
            "config": to_dict(self.cfg),
        }
        start = time.monotonic()
        checkpoint.save(payload, self.out / name)
        self._save_seconds = max(self._save_seconds, time.monotonic() - start)

    def _finish(self, seconds: float) -> SuperResResult:
        final = self.rows[-1]
        plot = self.out / "psnr.png"
        psnr_curves({self.cfg.model: self.rows}, plot, title=f"{self.cfg.model} ×{self.cfg.scale}: held-out PSNR")
        summary = {
            "model": self.cfg.model,
            "model_options": self.cfg.model_options,
            "scale": self.cfg.scale,
            "parameters": count_parameters(self.model),
            "data": self.splits.source,
            "train_images": len(self.splits.train),
            "test_images": len(self.test),
            "test_split": "held out" if self.splits.held_out else "test folder",
            "metric": f"{self.cfg.metric_channel.upper()} channel, {self.cfg.scale}-pixel border cropped",
            "steps": self.cfg.iters,
            "seconds": seconds,
            "final": final,
            "best_psnr": self.best,
            "device": str(self.runtime.device),
            "torch": torch.__version__,
        }
        run_folder.write_summary(self.out, summary)
        return SuperResResult(
            self.out,
            final["psnr"],
            final["ssim"],
            final["bicubic_psnr"],
            final["bicubic_ssim"],
            self.best,
            self.cfg.iters,
            seconds,
            plot,
        )


@torch.no_grad()
def measure(
    inputs: list,
    images: list[HeldOutImage],
    scale: int,
    channel: str,
    model: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Mean PSNR and SSIM against the HR images of `model(inputs)` (no model: the inputs themselves),
    quantized to 8 bits as an image file would hold them, with `scale` border pixels cropped."""
    if model is not None:
        model.eval()
    psnrs, ssims = [], []
    for start, stop in _same_size_runs(inputs):
        x = to_tensor(inputs[start:stop]).to(device)
        hr = to_tensor([t.hr for t in images[start:stop]])
        for i in range(0, len(x), EVAL_BATCH):
            out = x[i : i + EVAL_BATCH] if model is None else model(x[i : i + EVAL_BATCH])
            out = out.float().clamp(0, 1).mul(255).round().div(255).cpu()
            target = hr[i : i + EVAL_BATCH]
            psnrs.append(psnr(out, target, scale, channel))
            ssims.append(ssim(out, target, scale, channel))
    return {"psnr": torch.cat(psnrs).mean().item(), "ssim": torch.cat(ssims).mean().item()}


def _same_size_runs(arrays: list) -> list[tuple[int, int]]:
    """(start, stop) of each run of consecutive arrays of one shape: the batches that can be stacked."""
    runs, start = [], 0
    for i in range(1, len(arrays) + 1):
        if i == len(arrays) or arrays[i].shape != arrays[start].shape:
            runs.append((start, i))
            start = i
    return runs
