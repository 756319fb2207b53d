"""Where a run executes: device, precision, and the processes of a distributed run (torchrun)."""

from __future__ import annotations

import os
import platform
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import UsageError

CPUINFO = Path("/proc/cpuinfo")  # the kernel's CPU flags, read where torch has no bf16 probe


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
        """The autocast context of `precision` (fp32: none; auto: see `resolve_precision`)."""
        precision = resolve_precision(precision, self.device)
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over processes in place (a no-op in a single process)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true in any of the processes (each must ask)."""
        if self.world == 1:
            return flag
        return self.all_reduce(torch.tensor(float(flag), device=self.device)).item() > 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


# the CPU's widest vector units, best first: what its speed (and bf16, see native_bf16) depends on
CPU_FEATURES = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_name() -> str:
    """The CPU's model name (from the kernel), or what the platform says of it."""
    try:
        lines = CPUINFO.read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def hardware(device: torch.device) -> str:
    """What computes on `device`, for the record of a run: the GPU's name, or the CPU's model, its widest
    vector units and the threads torch uses ("AMD EPYC, AVX2, 2 threads")."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    try:
        flags = set(CPUINFO.read_text().split())
    except OSError:
        flags = set()
    units = next((name for flag, name in CPU_FEATURES if flag in flags), None)
    threads = torch.get_num_threads()
    return ", ".join(filter(None, (cpu_name(), units, f"{threads} thread{'s' if threads > 1 else ''}")))


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively: CUDA GPUs that support it, CPUs with AVX-512 BF16
    or AMX (read at run time; on other CPUs bf16 is emulated and slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:  # a torch without these probes: read the kernel's CPU flags
        try:
            flags = CPUINFO.read_text().split()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """`precision` with "auto" resolved: bf16 where `device` has native bf16, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def setup(device: str = "auto", deterministic: bool = False) -> Runtime:
    """The runtime of this process. Under torchrun (WORLD_SIZE > 1) joins the process group: NCCL on
    CUDA, gloo on CPU, each process on GPU `LOCAL_RANK` (a device cuda:N, which would put them all on
    one GPU, is refused). `deterministic`: deterministic algorithms only, from the start."""
    if deterministic:  # cuBLAS reads its deterministic workspace when CUDA first uses it: set before
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1 and device.startswith("cuda:"):
        raise UsageError(
            f"device={device} would put all {world} processes on one GPU: use device=cuda (each process takes "
            "GPU LOCAL_RANK)"
        )
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device={device}: CUDA is not available on this machine (use --device cpu)")
        if device == "cuda":
            device = f"cuda:{local_rank if world > 1 else torch.cuda.current_device()}"
        torch.cuda.set_device(device)
    runtime = Runtime(torch.device(device), rank, world, local_rank)
    if world > 1 and not dist.is_initialized():
        if runtime.device.type == "cuda":  # NCCL bound to this process's GPU from the start
            dist.init_process_group("nccl", device_id=runtime.device)
        else:
            dist.init_process_group("gloo")
    return runtime


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
