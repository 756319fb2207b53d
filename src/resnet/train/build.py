"""What a run trains, built from its config: the network, the optimizer and its parameter groups,
the forward pass (distributed, compiled), and the random state a checkpoint carries."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..errors import UsageError
from ..models import create_model, get_spec
from ..models.weights import Weights
from .finetune import start_from
from .runtime import Runtime


def build_model(cfg: TrainConfig, classes: int, features, source: Weights | None, runtime: Runtime):
    """The network of `cfg` with `classes` outputs on the runtime's device, started from `source`'s
    backbone when fine-tuning, and the options it was built with (what a checkpoint needs to rebuild
    it). `features()` gives the input size of models that take feature vectors."""
    options = dict(cfg.model_options)
    if "in_features" in get_spec(cfg.model).options:  # vector models take the data's input size
        options.setdefault("in_features", features())
    model = create_model(cfg.model, num_classes=classes, **options)
    if source:
        start_from(model, source)
    if cfg.sync_bn and runtime.world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    return model.to(runtime.device, memory_format=memory_format), options


def peak_lr(cfg: TrainConfig) -> float:
    """The learning rate the schedule starts from (its peak): `optimizer.lr`, grown with the global batch
    by the linear scaling rule (Goyal et al. 2017) with `scale_lr`."""
    opt = cfg.optimizer
    return opt.lr * (cfg.batch_size / opt.reference_batch if opt.scale_lr else 1)


def build_optimizer(cfg: TrainConfig, groups: list[dict], device: torch.device) -> torch.optim.Optimizer:
    """SGD, AdamW or LAMB over the parameter `groups` (each with its `lr_scale`), each group split into
    decayed and (with decay_norm_and_bias=false) undecayed parameters. The learning rate of each group
    is set at every step: the schedule's × its `lr_scale`."""
    opt = cfg.optimizer
    split = []
    for group in groups:
        params = group["params"]
        decay = [p for p in params if p.ndim > 1 or opt.decay_norm_and_bias]
        no_decay = [p for p in params if p.ndim <= 1 and not opt.decay_norm_and_bias]
        split += [
            {"params": ps, "weight_decay": wd, "lr_scale": group["lr_scale"]}
            for ps, wd in ((decay, opt.weight_decay), (no_decay, 0.0))
            if ps
        ]
    # one kernel for all parameters; on a CPU a step takes half (SGD) to a sixth (AdamW) of the default's time
    fused = device.type in ("cuda", "cpu")
    if opt.name == "adamw":
        return torch.optim.AdamW(split, betas=tuple(opt.betas), fused=fused)
    if opt.name == "lamb":
        return lamb(split, tuple(opt.betas))
    return torch.optim.SGD(split, momentum=opt.momentum, nesterov=opt.nesterov, fused=fused)


def lamb(groups: list[dict], betas: tuple[float, float]) -> torch.optim.Optimizer:
    """LAMB (You et al. 2019): pytorch_optimizer's, set to the semantics of timm's (RSB's) where it can
    be: the global gradient norm clipped to 1, weight decay inside the trust ratio ||w|| / ||update||,
    no trust ratio (an Adam step) for parameters without weight decay. Unlike timm's, the second moment
    is not bias-corrected (the first moment's correction cancels in the trust ratio, and is left out)."""
    try:
        from pytorch_optimizer import Lamb
    except ImportError:
        raise UsageError("optimizer.name=lamb needs pytorch_optimizer: pip install 'resnet[lamb]'") from None
    for group in groups:
        group["adam"] = group["weight_decay"] == 0  # timm's always_adapt=False, LAMB's exclusion from adaptation
    optimizer = Lamb(groups, betas=betas, weight_decouple=False, pre_norm=True, max_grad_norm=1.0, adam_debias=True)
    optimizer.clamp = math.inf  # ||w|| unclamped in the trust ratio, as timm's and the paper's (pytorch_optimizer: 10)
    return optimizer


CUDA_GRAPHS = ("reduce-overhead", "max-autotune")  # the compile modes that capture CUDA graphs


def forward_pass(model: nn.Module, cfg: TrainConfig, runtime: Runtime):
    """`model` as the loop calls it: wrapped for distributed training, compiled as `cfg.compile` says."""
    if runtime.world > 1:
        if runtime.device.type == "cuda" and cfg.compile in CUDA_GRAPHS:
            raise UsageError(
                f"compile={cfg.compile} with {runtime.world} processes: CUDA graphs are skipped under "
                "DistributedDataParallel with batch norm; use compile=default"
            )
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if cfg.compile == "none":
        return model
    return torch.compile(model, mode=None if cfg.compile == "default" else cfg.compile)


def rng_state() -> dict:
    """The random state of this process (torch, CUDA, NumPy): a resumed run draws what it would have."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = np.random.get_state()
    np.random.set_state((np_state[0], state["numpy"].numpy().astype(np.uint32), *np_state[2:]))
