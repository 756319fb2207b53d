"""How many Table-6 runs fit at once on one GPU, from the memory of each measured on the CPU.

    python benchmarks/table6_memory.py [--gpu-gib 139]

For plain and ResNet 20, 32, 44, 56 and 110 at cifar-paper's batch of 128, under bf16 autocast as a GPU
runs them: the weights, their gradients and SGD's momentum (3 float32 copies), and the activations
autograd keeps for the backward pass (every distinct tensor storage its saved-tensor hooks see, once).
Per process the GPU adds what the CPU cannot show: the CUDA context, cuDNN's and cuBLAS's workspaces and
the caching allocator's slack, taken as a fixed allowance. benchmarks/gpu.sh's evidence part uses the
number printed last.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from resnet import create_model

BATCH = 128  # cifar-paper's
CONTEXT_GIB = 1.0  # CUDA context with cuDNN and cuBLAS loaded (about 0.5-0.8 GiB) and their workspaces
SLACK = 2.0  # the caching allocator's reserve over what is live, and a CUDA graph's private pool
CORES = 16  # the GPU machine's: one busy Python loop per run, and inductor compiles beside it


def training_bytes(name: str) -> tuple[int, int]:
    """(bytes of weights, gradients and momentum; bytes of saved activations) of one training step."""
    model = create_model(name).train().to(memory_format=torch.channels_last)
    state = 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), torch.zeros(BATCH, dtype=torch.long))
    del loss
    return state, sum(storages.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-gib", type=float, default=139.0, help="the GPU's memory (default: an H200's 139 GiB)")
    args = parser.parse_args(argv)
    gib = 2**30
    largest = 0.0
    print("| model | weights, gradients, momentum | saved activations (bf16) | per process on a GPU |")
    print("|---|---:|---:|---:|")
    for depth in (20, 32, 44, 56, 110):
        for kind in ("plain", "resnet"):
            state, activations = training_bytes(f"{kind}{depth}")
            process = CONTEXT_GIB + SLACK * (state + activations) / gib
            largest = max(largest, process)
            print(f"| {kind}{depth} | {state / 2**20:.1f} MiB | {activations / 2**20:.0f} MiB | {process:.2f} GiB |")
    fit = int(args.gpu_gib // largest)
    print(f"\nat most {largest:.2f} GiB a process: {fit} fit in {args.gpu_gib:g} GiB; the {CORES} cores hold {CORES}; ")
    print(f"Table 6 has 10 runs: all {min(fit, CORES, 10)} at once")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
