"""Speed and memory of this project against its peers, measured side by side in one run.

    python benchmarks/run.py                 # everything this machine can run (GPU sections need CUDA)
    python benchmarks/run.py --quick         # tiny sizes on the CPU: checks the plumbing, not the speed
    python benchmarks/run.py --only cpu      # one section: cpu, inference, throughput, feeding, cifar

Prints a table with the ratio ours / peer for each benchmark and writes everything to a JSON file
(--out, default benchmarks/results/<date>-<device>.json). Copy the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from resnet import create_model
from resnet.analysis.report import machine
from resnet.config import resolve
from resnet.data.load import load_data
from resnet.optimize import for_inference
from resnet.train.trainer import Trainer

SECTIONS = ("cpu", "inference", "throughput", "feeding", "cifar")


def timed(fn: Callable[[], object], warmup: int, reps: int, device: torch.device) -> float:
    """Median seconds of `fn()` over `reps` calls after `warmup` calls (device work included)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(
    name: str,
    ours: float,
    peer: float,
    unit: str,
    goal: float | None = None,
    peer_name: str = "",
    higher_is_better: bool = True,
    notes: str = "",
) -> dict:
    ratio = ours / peer if higher_is_better else peer / ours
    return {
        "benchmark": name,
        "ours": ours,
        "peer": peer,
        "unit": unit,
        "peer_name": peer_name,
        "ratio": ratio,
        "goal": goal,
        "met": None if goal is None else ratio >= goal,
        "notes": notes,
    }


def reference(name: str, device: torch.device) -> torch.nn.Module:
    """The peer model: torchvision's when it is installed, else our own eager model of the same name."""
    try:
        import torchvision

        return getattr(torchvision.models, name)().to(device)
    except (ImportError, AttributeError):
        return create_model(name).to(device)


def peer_label(name: str) -> str:
    try:
        import torchvision

        return f"torchvision {torchvision.__version__} {name}"
    except ImportError:
        return f"resnet {name} (torchvision not installed)"


# -- 6. CPU inference: latency at batch 1, throughput at batch 256 ------------------------------------


def cpu(quick: bool) -> list[dict]:
    device = torch.device("cpu")
    model = create_model("resnet20").eval()
    fast = for_inference(model, device, precision="fp32", channels_last=True, compile=not quick)
    peer, threads = "eager resnet20 (same weights)", f"{torch.get_num_threads()} threads"

    def seconds(fn, batch: int, reps: int) -> float:
        x = torch.randn(batch, 3, 32, 32)
        with torch.inference_mode():
            return timed(lambda: fn(x), 3, reps, device)

    latency = [seconds(fn, 1, 20 if quick else 300) for fn in (fast, model)]
    batch = 8 if quick else 256
    bulk = [batch / seconds(fn, batch, 3 if quick else 20) for fn in (fast, model)]
    return [
        row(
            "cpu resnet20 latency, batch 1",
            latency[0] * 1e3,
            latency[1] * 1e3,
            "ms",
            None,
            peer,
            higher_is_better=False,
            notes=threads,
        ),
        row(f"cpu resnet20 throughput, batch {batch}", bulk[0], bulk[1], "images/s", None, peer, notes=threads),
    ]


# -- 4. inference throughput: resnet50, batch 256, bf16 ----------------------------------------------


def inference(quick: bool) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    name, batch, size = ("resnet18", 4, 64) if quick else ("resnet50", 256, 224)
    precision = "bf16" if device.type == "cuda" else "fp32"
    x = torch.randn(batch, 3, size, size, device=device)
    ours_fn = for_inference(create_model(name).eval(), device, precision=precision, compile=not quick)
    peer_model = reference(name, device).eval().to(memory_format=torch.channels_last)
    peer_compiled = torch.compile(peer_model) if not quick else peer_model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def peer():
        with torch.inference_mode(), autocast:
            return peer_compiled(x.contiguous(memory_format=torch.channels_last))

    reps = 3 if quick else 50
    ours = timed(lambda: ours_fn(x), 3, reps, device)
    theirs = timed(peer, 3, reps, device)
    return [
        row(
            f"inference {name}, batch {batch}, {precision}",
            batch / ours,
            batch / theirs,
            "images/s",
            1.25,
            f"{peer_label(name)}, compiled, channels_last, autocast",
        )
    ]


# -- 3. training throughput: 224×224, batch 256, bf16 ------------------------------------------------


def _trainer(name: str, batch: int, size: int, device: torch.device, overrides: dict) -> Trainer:
    config = resolve(
        "imagenet-paper",
        {
            "data.source": "synthetic",
            "data.mode": "tensor",
            "data.augment": "none",
            "data.image_size": size,
            "batch_size": batch,
            **overrides,
        },
        model=name,
        device=str(device),
        iters=1,
        epochs=0,
    )
    return Trainer(config, Path(tempfile.mkdtemp()), progress=False)


def throughput(quick: bool) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    return [train_step_speed(name, device, quick) for name in (("resnet18",) if quick else ("resnet50", "resnet18"))]


def train_step_speed(name: str, device: torch.device, quick: bool) -> dict:
    """Images/s of our training step (the trainer's own) against the peer's compiled eager step."""
    batch, size = (8, 64) if quick else (256, 224)
    precision = "bf16" if device.type == "cuda" else "fp32"
    reps = 3 if quick else 30
    fast = {"precision": precision, "channels_last": True, "compile": "none" if quick else "max-autotune"}
    trainer = _trainer(name, batch, size, device, fast)
    x, y = trainer.train_loader.batch(0)
    ours = timed(lambda: trainer.train_step(x, y, 0.1), 3, reps, device)

    model = reference(name, device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    compiled = torch.compile(model) if not quick else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def peer_step():
        with autocast:
            loss = F.cross_entropy(compiled(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    theirs = timed(peer_step, 3, reps, device)
    return row(
        f"training {name}, {size}×{size}, batch {batch}, {precision}",
        batch / ours,
        batch / theirs,
        "images/s",
        1.15,
        f"{peer_label(name)}, compiled, channels_last, autocast",
    )


# -- 5. feeding the GPU from a folder of ImageNet-size JPEGs -----------------------------------------


def make_jpeg_folder(root: Path, count: int, size: tuple[int, int]) -> Path:
    """`count` photo-like JPEGs of `size` in two class folders (smooth random fields, not noise)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / "train" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size, Image.BICUBIC).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def feeding(quick: bool) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    count, size, batch = (32, (160, 120), 8) if quick else (2048, (500, 375), 256)
    image_size = 64 if quick else 224
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpeg_folder(Path(tmp), count, size)
        overrides = {
            "data.source": str(folder),
            "data.mode": "stream",
            "data.augment": "random-resized-crop",
            "data.image_size": image_size,
            "batch_size": batch,
            "channels_last": True,
            "precision": "bf16" if device.type == "cuda" else "fp32",
            "data.test_fraction": 0.05,
            "data.workers": 2 if quick else 15,
        }
        config = resolve(
            "imagenet-paper",
            overrides,
            model="resnet50" if not quick else "resnet18",
            device=str(device),
            iters=1,
            epochs=0,
        )
        trainer = Trainer(config, Path(tmp) / "run", progress=False)
        steps = 3 if quick else 40
        x, y = trainer.train_loader.batches(0).__next__()

        def run_from_folder() -> float:
            batches = trainer.train_loader.batches(0)
            next(batches)  # workers started
            start = time.perf_counter()
            for _ in range(steps):
                xb, yb = next(batches)
                trainer.train_step(xb, yb, 0.1)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return steps * batch / (time.perf_counter() - start)

        ours = run_from_folder()
        synthetic = batch / timed(lambda: trainer.train_step(x, y, 0.1), 2, steps, device)
    return [
        row(
            f"training from JPEG folder ({size[0]}×{size[1]}) vs synthetic input",
            ours,
            synthetic,
            "images/s",
            0.8,
            "the same training step on a resident batch",
        )
    ]


# -- 1. the paper's CIFAR schedule, end to end -------------------------------------------------------


def cifar(quick: bool, data: str | None) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    name, iters = ("resnet20", 6) if quick else ("resnet56", 64000)
    fast = {
        "channels_last": True,
        "precision": "bf16" if device.type == "cuda" else "fp32",
        "compile": "none" if quick else "max-autotune",
        "log.evals": 4,
    }
    start = time.perf_counter()
    out = Path(tempfile.mkdtemp())
    config = resolve("cifar-paper", {"data.source": data, **fast}, model=name, device=str(device), iters=iters)
    result = Trainer(config, out, progress=False).run()
    ours = time.perf_counter() - start
    peer_steps = 5 if quick else 3 * 390
    peer_seconds, peer_accuracy = eager_cifar_loop(name, data, device, peer_steps, iters)
    return [
        row(
            f"cifar-paper {name}, {iters} iterations, end to end",
            ours,
            peer_seconds,
            "s",
            None,
            f"plain eager loop ({peer_steps} iterations timed, extrapolated)",
            higher_is_better=False,
            notes=f"test accuracy ours {100 * result.test_accuracy:.2f}%, peer {peer_accuracy}",
        )
    ]


def eager_cifar_loop(name: str, data: str | None, device: torch.device, steps: int, iters: int):
    """The peer: a plain eager PyTorch loop of the same recipe (GPU-resident data, same augmentation,
    fp32, per-step loss.item()), timed for `steps` iterations and extrapolated to `iters`."""
    from resnet.data.augment import Normalize, pad_crop_flip

    config = resolve("cifar-paper", {"data.source": data}, model=name, iters=iters)
    dataset = load_data(config.data).arrays["train"]
    images, labels = dataset.images.to(device), dataset.labels.to(device)
    normalize = Normalize.fit(dataset.images, per_pixel=True).to(device)
    model = create_model(name).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(labels), generator=g).to(device)
    per_epoch = len(labels) // 128
    start = time.perf_counter()
    for step in range(steps):
        if step and step % per_epoch == 0:
            perm = torch.randperm(len(labels), generator=g).to(device)
        index = perm[(step % per_epoch) * 128 : (step % per_epoch + 1) * 128]
        x = normalize(pad_crop_flip(images[index], 4, g))
        loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
    seconds = (time.perf_counter() - start) / steps * iters
    return seconds, "not trained to the end (timed only)"


def environment() -> dict:
    device = machine()
    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:
        tv = None
    return {
        "date": datetime.date.today().isoformat(),
        "device": device,
        "torch": torch.__version__,
        "torchvision": tv,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU: plumbing, not timing")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--data", help="cifar: CIFAR-10 (e.g. cifar10-jpeg.tar.gz); default the embedded subset")
    parser.add_argument("--out", type=Path, help="JSON results (default: benchmarks/results/DATE-DEVICE.json)")
    args = parser.parse_args(argv)
    sections = args.only or [s for s in SECTIONS if torch.cuda.is_available() or s == "cpu" or args.quick]
    runners = {
        "cpu": cpu,
        "inference": inference,
        "throughput": throughput,
        "feeding": feeding,
        "cifar": lambda quick: cifar(quick, args.data),
    }
    results = {"environment": environment(), "quick": args.quick, "rows": []}
    for section in sections:
        results["rows"] += runners[section](args.quick)
    kind = "quick" if args.quick else "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or Path(__file__).parent / "results" / f"{results['environment']['date']}-{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(table(results["rows"]))
    print(f"\n{out}: {results['environment']}")
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | ours | peer | ratio | goal | peer is |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        goal = f"≥ {r['goal']:.2f}× {'✅' if r['met'] else '❌'}" if r["goal"] else ""
        lines.append(
            f"| {r['benchmark']} | {r['ours']:,.2f} {r['unit']} | {r['peer']:,.2f} {r['unit']} | "
            f"{r['ratio']:.2f}× | {goal} | {r['peer_name']}{'; ' + r['notes'] if r['notes'] else ''} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
