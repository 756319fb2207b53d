"""Where a run executes: device, precision, and the processes of a distributed run (torchrun)."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError


@dataclass
class Runtime:
    """The device of this process and its place among `world` processes (rank 0 writes files)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self, precision: str):
        """The autocast context of `precision` (fp32: none; auto: bf16 on CUDA, none on CPU)."""
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over processes in place (a no-op in a single process)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup(device: str = "auto") -> Runtime:
    """The runtime of this process. Under torchrun (WORLD_SIZE > 1) joins the process group: NCCL on
    CUDA, gloo on CPU, each process on GPU `LOCAL_RANK`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device={device}: CUDA is not available on this machine (use --device cpu)")
        if device == "cuda":
            device = f"cuda:{local_rank if world > 1 else torch.cuda.current_device()}"
        torch.cuda.set_device(device)
    runtime = Runtime(torch.device(device), rank, world, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if runtime.device.type == "cuda" else "gloo")
    return runtime


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
