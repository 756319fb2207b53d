"""What a safe checkpoint costs: `resnet.checkpoint.save` and `load` against plain torch.save and torch.load.

    python benchmarks/checkpoint.py [--model resnet50] [--repeat 5]

The state is that of a training run: the weights and SGD's momentum (Adam's two moments with
--optimizer adamw). Ours adds a digest of every byte (checked on loading), an fsync and an atomic
rename; the peer writes the same dictionary with torch.save into the same folder, and reads it with
torch.load(weights_only=True). Each figure is the median of --repeat rounds, the two taking turns.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from resnet import __version__, checkpoint, create_model
from resnet.train.runtime import hardware


def training_state(model_name: str, optimizer: str) -> dict:
    model = create_model(model_name)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params) if optimizer == "adamw" else torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()  # creates the optimizer's state
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 1}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    state = training_state(args.model, args.optimizer)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        ours, peer = Path(folder) / "ours.pt", Path(folder) / "peer.pt"
        times: dict[str, list[float]] = {k: [] for k in ("save ours", "save peer", "load ours", "load peer")}
        for _ in range(args.repeat):
            times["save ours"].append(timed(lambda: checkpoint.save(state, ours)))
            times["save peer"].append(timed(lambda: torch.save(state, peer)))
            times["load ours"].append(timed(lambda: checkpoint.load(ours)))
            times["load peer"].append(timed(lambda: torch.load(peer, weights_only=True)))
        size = ours.stat().st_size
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{args.model} + {args.optimizer}: {size / 2**20:.0f} MiB; {hardware('cpu')}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, resnet {__version__}, Python {platform.python_version()}"
    )
    print("| | ours (digest, fsync, atomic) | torch | ratio |")
    print("|---|---:|---:|---:|")
    for what in ("save", "load"):
        a, b = median[f"{what} ours"], median[f"{what} peer"]
        print(f"| {what} | {a:.3f} s ({size / 2**20 / a:.0f} MiB/s) | {b:.3f} s | {a / b:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
