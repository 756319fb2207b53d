"""Speed and memory of this project against its peers, measured side by side in one run.

    python benchmarks/run.py                 # on a CPU host the cpu section; on a GPU host the GPU sections
    python benchmarks/run.py --quick         # every section at tiny sizes on the CPU: the plumbing, not the speed
    python benchmarks/run.py --only cpu      # one section: cpu, inference, throughput, feeding, cifar, speedrun

Writes each section's rows to a JSON file the moment the section ends (--out, default
benchmarks/results/<date>-<device>.json; an existing file is added to, a section run again replaces its
rows); a section that fails is recorded with its reason in one line and the others still run (exit
status 1). Prints a table with the ratio ours / peer for each benchmark: copy it into BENCHMARKS.md.
benchmarks/gpu.sh runs the GPU sections one process each, with a time cap each.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from resnet import count_macs, create_model
from resnet.analysis.report import machine
from resnet.config import TrainConfig, resolve
from resnet.data.sources import load_data
from resnet.errors import UsageError
from resnet.optimize import for_inference
from resnet.train.trainer import Trainer

SECTIONS = ("cpu", "inference", "throughput", "feeding", "cifar", "speedrun")  # BENCHMARKS.md's order

# Every size of every section, read once in main: "full" is what BENCHMARKS.md reports, "quick" (--quick) checks
# the plumbing. Quick mode also skips what costs minutes and measures nothing at tiny sizes (compilation,
# a process per CPU engine, speedrun's warm-up run) and runs every section on the CPU.
SIZES = {
    "full": {
        "on_cpu": False,  # the GPU sections run on CUDA, and by default only where there is CUDA
        "cpu": {
            "peak_matrix": 4096,  # n of the n×n matrix multiply that measures the CPU's peak
            "peak_reps": 5,
            "inference": [("resnet20", 1, 32), ("resnet20", 256, 32), ("resnet50", 1, 224), ("resnet50", 16, 224)],
            "engine_reps": (10, 300),  # calls per engine: 3,000 images' worth (224×224 counts 49), within these
            "engine_compile": True,
            "engine_processes": True,  # each engine timed in a process of its own
            "training": ("resnet20", "resnet56"),
            "train_batch": 128,
            "train_steps": 60,
            "rounds": 5,  # turns of timing, so that a slower spell of a shared machine touches every engine alike
        },
        "inference": {"model": "resnet50", "batch": 256, "image_size": 224, "reps": 50, "compile": True},
        "throughput": {
            "models": ("resnet50", "resnet18"),
            "batch": 256,
            "image_size": 224,
            "reps": 30,
            "compile": "max-autotune",
        },
        "feeding": {
            "model": "resnet50",
            "jpeg_size": (500, 375),
            "batch": 256,
            "steps": 20,
            "image_size": 224,
            "workers": 15,
        },
        "cifar": {
            "model": "resnet56",
            "iters": 64000,
            "compile": "reduce-overhead",
            "peer_steps": 3 * 390,
            "overrides": {},
        },
        "speedrun": {"epochs": (6, 8, 10, 12), "seeds": 5, "warmup": True, "overrides": {}},
    },
    "quick": {
        "on_cpu": True,
        "cpu": {
            "peak_matrix": 256,
            "peak_reps": 2,
            "inference": [("resnet20", 2, 32)],
            "engine_reps": (3, 3),
            "engine_compile": False,
            "engine_processes": False,
            "training": ("resnet20",),
            "train_batch": 16,
            "train_steps": 3,
            "rounds": 1,
        },
        "inference": {"model": "resnet18", "batch": 4, "image_size": 32, "reps": 3, "compile": False},
        "throughput": {"models": ("resnet18",), "batch": 4, "image_size": 32, "reps": 3, "compile": "none"},
        "feeding": {
            "model": "resnet18",
            "jpeg_size": (160, 120),
            "batch": 4,
            "steps": 3,
            "image_size": 32,
            "workers": 2,
        },
        "cifar": {
            "model": "resnet20",
            "iters": 4,
            "compile": "none",
            "peer_steps": 3,
            "overrides": {"batch_size": 16, "log.evals": 1},
        },
        "speedrun": {
            "epochs": (0.25,),
            "seeds": 1,
            "warmup": False,
            "overrides": {"model_options": {"width": 8}, "batch_size": 64},
        },
    },
}


# -- measuring and reporting ------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a no-op on the CPU, whose work is done when it returns)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], warmup: int, reps: int, device: torch.device) -> float:
    """Median seconds of `fn()` over `reps` calls after `warmup` calls (device work included)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
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
    ratio = None if peer is None else ours / peer if higher_is_better else peer / ours
    return {
        "benchmark": name,
        "ours": ours,
        "peer": peer,
        "unit": unit,
        "peer_name": peer_name,
        "ratio": ratio,
        "goal": goal,
        "met": None if goal is None or ratio is None else ratio >= goal,
        "notes": notes,
    }


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | ours | peer | ratio | goal | peer is |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        goal = f"≥ {r['goal']:.2f}× {'✅' if r['met'] else '❌'}" if r["goal"] and r["ratio"] else ""
        peer = f"{r['peer']:,.2f} {r['unit']}" if r["peer"] is not None else "–"
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else "–"
        lines.append(
            f"| {r['benchmark']} | {r['ours']:,.2f} {r['unit']} | {peer} | {ratio} | {goal} | "
            f"{r['peer_name']}{'; ' + r['notes'] if r['notes'] else ''} |"
        )
    return "\n".join(lines)


def environment() -> dict:
    device = machine()
    try:
        import torchvision

        tv = torchvision.__version__
    except (ImportError, RuntimeError, OSError):  # RuntimeError: a build for another torch fails to load
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


# -- the trainer's own loop as the benchmarks drive it: their only calls into the Trainer's internals --


@contextlib.contextmanager
def temporary_trainer(config: TrainConfig) -> Iterator[Trainer]:
    """A Trainer of `config` whose run folder is temporary: removed on leaving, also on an error."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp) / "run", progress=False)
        trainer.model.train()  # as Trainer.run sets it before its loop
        yield trainer


def train_batches(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The trainer's training batches from step 0 on, epoch after epoch."""
    return trainer.train_loader.batches(0)


def train_steps(steps: Iterator[int], count: int) -> None:
    """`count` more steps of a `Trainer.steps()` iterator: the product's loop (batches, learning rate,
    forward, backward, update)."""
    for _ in itertools.islice(steps, count):
        pass


def read_step_results(trainer: Trainer) -> None:
    """Bring the steps' running loss and errors to the host (waiting for the steps), as the loop does
    every few steps."""
    trainer.meter.read()


# -- the peers ---------------------------------------------------------------------------------------


def reference(name: str, device: torch.device) -> torch.nn.Module:
    """The peer model: torchvision's when it is installed, else our own eager model of the same name."""
    try:
        import torchvision

        return getattr(torchvision.models, name)().to(device)
    except (ImportError, RuntimeError, OSError, AttributeError):
        return create_model(name).to(device)


def peer_label(name: str) -> str:
    try:
        import torchvision

        return f"torchvision {torchvision.__version__} {name}"
    except (ImportError, RuntimeError, OSError):
        return f"resnet {name} (torchvision not installed or not loading)"


def eager_cifar_loop(
    name: str,
    data: str | None,
    device: torch.device,
    steps: int,
    iters: int,
    precision: str = "fp32",
    batch: int = 128,
):
    """The peer: a plain eager PyTorch loop of the same recipe (device-resident data, same augmentation,
    fp32 or bf16 autocast, per-step loss.item()), timed for `steps` iterations and extrapolated to `iters`."""
    from resnet.data.augment import Normalize, pad_crop_flip

    config = resolve("cifar-paper", {"data.source": data}, model=name, iters=iters)
    dataset = load_data(config.data).splits["train"]
    images, labels = dataset.images.to(device), dataset.labels.to(device)
    normalize = Normalize.fit(dataset.images, per_pixel=True).to(device)
    model = create_model(name).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(labels), generator=g).to(device)
    per_epoch = len(labels) // batch
    warmup = 3  # untimed: oneDNN chooses its kernels and memory is allocated in the first steps
    for step in range(steps + warmup):
        if step == warmup:
            start = time.perf_counter()
        if step and step % per_epoch == 0:
            perm = torch.randperm(len(labels), generator=g).to(device)
        index = perm[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
        x = normalize(pad_crop_flip(images[index], 4, g))
        with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x).float(), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
    seconds = (time.perf_counter() - start) / steps * iters
    return seconds, "not trained to the end (timed only)"


# -- cpu: inference against OpenVINO and ONNX Runtime, training against the eager loop --------------


def cpu(sizes: dict) -> list[dict]:
    """Every CPU figure of BENCHMARKS.md in one run: the machine's peak, inference of our engines and of
    the peers on the same weights, and cifar-paper training against the plain eager fp32 loop."""
    peak = cpu_peak(sizes)
    rows = [row(f"cpu peak, {p} matrix multiply", f / 1e9, None, "GFLOP/s") for p, f in peak.items()]
    rows += [r for case in sizes["inference"] for r in cpu_inference(*case, peak, sizes)]
    for name in sizes["training"]:
        rows += cpu_training(name, peak, sizes)
    return rows


def cpu_peak(sizes: dict) -> dict[str, float]:
    """FLOP/s of a large matrix multiply in fp32 and bf16 on every thread: what the CPU can do at best."""
    n, reps = sizes["peak_matrix"], sizes["peak_reps"]
    peak = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        peak[precision] = 2 * n**3 / timed(lambda a=a, b=b: torch.mm(a, b), 2, reps, torch.device("cpu"))
    print(f"cpu peak: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s", file=sys.stderr)
    return peak


def _share(flops_per_s: float, peak: dict[str, float], precision: str) -> str:
    return f"{flops_per_s / 1e9:.0f} GFLOP/s, {100 * flops_per_s / peak[precision]:.0f}% of the {precision} peak"


CPU_ENGINES = ("ours", "ours, torch engine", "eager model", "OpenVINO", "ONNX Runtime")


def _cpu_engine(name: str, size: int, who: str, compile: bool):
    """The engine `who` for `name` (seeded weights, the same in every process) and what it is, or None
    when its package is missing."""
    from resnet.optimize import onnx_bytes

    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(1, 3, size, size)
    if who.startswith("ours"):
        fn = for_inference(model, "cpu", engine="auto" if who == "ours" else "torch", compile=compile)
        return model, fn, f"{fn.engine} {fn.precision}"
    if who == "eager model":
        return model, model, "eager fp32"
    try:
        if who == "OpenVINO":
            import openvino

            compiled = openvino.Core().compile_model(openvino.Core().read_model(onnx_bytes(model, x), b""), "CPU")
            hint = "bf16" if "bf" in str(compiled.get_property("INFERENCE_PRECISION_HINT")) else "fp32"
            version = openvino.__version__.split("-")[0]
            return model, lambda batch: compiled(batch.numpy())[0], f"OpenVINO {version} defaults: {hint}"
        import onnxruntime

        session = onnxruntime.InferenceSession(onnx_bytes(model, x), providers=["CPUExecutionProvider"])
        fn = lambda batch: session.run(None, {"input": batch.numpy()})[0]  # noqa: E731
        return model, fn, f"ONNX Runtime {onnxruntime.__version__} defaults: fp32"
    except ImportError:
        return None


def _time_cpu_engine(name: str, batch: int, size: int, who: str, sizes: dict) -> dict | None:
    """Median seconds per call of engine `who` on a batch (the median of the rounds' medians), and its
    difference from the fp32 model."""
    built = _cpu_engine(name, size, who, sizes["engine_compile"])
    if built is None:
        return None
    model, fn, what = built
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    least, most = sizes["engine_reps"]
    reps = max(least, min(most, round(3000 / (batch * (1 if size == 32 else 49)))))
    with torch.inference_mode():
        expected = model(x)
        out = torch.as_tensor(np.asarray(fn(x)))  # also the first call: compilation and the check
        difference = ((out - expected).abs().max() / expected.abs().max().clamp_min(1)).item()
        turns = sizes["rounds"]
        rounds = [timed(lambda: fn(x), 1, max(1, reps // turns), torch.device("cpu")) for _ in range(turns)]
    return {"seconds": statistics.median(rounds), "difference": difference, "what": what}


def cpu_inference(name: str, batch: int, size: int, peak: dict, sizes: dict) -> list[dict]:
    """`for_inference` (auto: the fastest engine installed; and the torch engine alone) against OpenVINO
    and ONNX Runtime as a new user runs them, on the same weights (exported to one ONNX graph for both).
    Each engine is timed in a process of its own (not in --quick): thread pools of different runtimes
    in one process slow each other down (OpenVINO pins its threads to the cores; ONNX Runtime's spin)."""
    import concurrent.futures
    import multiprocessing

    results = {}
    for who in CPU_ENGINES:
        if not sizes["engine_processes"]:
            results[who] = _time_cpu_engine(name, batch, size, who, sizes)
            continue
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            results[who] = pool.submit(_time_cpu_engine, name, batch, size, who, sizes).result()
    results = {who: r for who, r in results.items() if r is not None}
    seconds = {who: r["seconds"] for who, r in results.items()}
    differences = {who: r["difference"] for who, r in results.items()}
    what = {who: r["what"] for who, r in results.items()}
    model = create_model(name)
    flops = 2 * count_macs(model, (3, size, size)) * batch
    label = f"cpu {name} inference, batch {batch}"
    latency = batch == 1

    def figure(who: str) -> float:
        return seconds[who] * 1e3 if latency else batch / seconds[who]

    def notes(who: str) -> str:
        precision = "bf16" if "bf16" in what[who] else "fp32"
        return (
            f"{what[who]}; {_share(flops / seconds[who], peak, precision)}; differs from fp32 eager by "
            f"{differences[who]:.0e} of the largest logit"
        )

    rows = []
    for ours in ("ours", "ours, torch engine"):
        for peer in ("OpenVINO", "ONNX Runtime", "eager model"):
            if peer not in seconds:
                continue
            goal = {"ours": 1.0, "ours, torch engine": 1 / 1.5}[ours] if peer == "OpenVINO" else None
            rows.append(
                row(
                    f"{label}: {ours} / {peer}",
                    figure(ours),
                    figure(peer),
                    "ms" if latency else "images/s",
                    goal,
                    f"{peer} ({notes(peer)})",
                    higher_is_better=not latency,
                    notes=notes(ours),
                )
            )
    return rows


def cpu_training_config(name: str, sizes: dict) -> TrainConfig:
    """The trainer's cifar-paper run that the cpu section times, pinned to the CPU: on a GPU host "auto"
    would be CUDA, comparing the GPU trainer with the CPU eager loop."""
    return resolve("cifar-paper", {"batch_size": sizes["train_batch"]}, model=name, device="cpu", iters=64000)


def cpu_training(name: str, peak: dict, sizes: dict) -> list[dict]:
    """The trainer's own cifar-paper loop (recipe defaults: precision auto, channels_last; data and
    augmentation included) against the plain eager fp32 loop and the same loop under bf16 autocast."""
    config = cpu_training_config(name, sizes)
    turns = sizes["rounds"]
    cpu_device, chunk = torch.device("cpu"), max(1, sizes["train_steps"] // turns)
    seconds = {"ours": 0.0, "fp32": 0.0, "bf16": 0.0}
    with temporary_trainer(config) as trainer:
        steps = trainer.steps()
        train_steps(steps, 3)  # warm-up: oneDNN's kernels chosen, memory allocated
        for _ in range(turns):  # in turns, so that a slower spell of a shared machine touches each loop alike
            start = time.perf_counter()
            train_steps(steps, chunk)
            read_step_results(trainer)
            seconds["ours"] += time.perf_counter() - start
            for p in ("fp32", "bf16"):
                seconds[p] += eager_cifar_loop(name, None, cpu_device, chunk, chunk, p, config.batch_size)[0]
        flops = 3 * 2 * count_macs(trainer.model, (3, 32, 32))  # forward, and backward at twice its cost
        precision = "bf16" if trainer.autocast.__class__ is torch.autocast else "fp32"
    images = turns * chunk * config.batch_size
    ours = images / seconds["ours"]
    peer_rate = {p: images / seconds[p] for p in ("fp32", "bf16")}
    notes = f"{precision}, channels_last; {_share(ours * flops, peak, precision)}"
    return [
        row(
            f"cpu {name} cifar-paper training, batch {config.batch_size}: ours / eager fp32",
            ours,
            peer_rate["fp32"],
            "images/s",
            2.0,
            f"plain eager fp32 loop ({_share(peer_rate['fp32'] * flops, peak, 'fp32')})",
            notes=notes,
        ),
        row(
            f"cpu {name} cifar-paper training, batch {config.batch_size}: ours / eager bf16",
            ours,
            peer_rate["bf16"],
            "images/s",
            None,
            f"the eager loop under bf16 autocast ({_share(peer_rate['bf16'] * flops, peak, 'bf16')})",
            notes=notes,
        ),
    ]


# -- inference: resnet50, batch 256, bf16, on a GPU --------------------------------------------------


def inference(sizes: dict, device: torch.device) -> list[dict]:
    name, batch, size = sizes["model"], sizes["batch"], sizes["image_size"]
    precision = "bf16" if device.type == "cuda" else "fp32"
    x = torch.randn(batch, 3, size, size, device=device)
    ours_fn = for_inference(create_model(name).eval(), device, precision=precision, compile=sizes["compile"])
    peer_model = reference(name, device).eval().to(memory_format=torch.channels_last)
    peer_compiled = torch.compile(peer_model) if sizes["compile"] else peer_model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def peer():
        with torch.inference_mode(), autocast:
            return peer_compiled(x.contiguous(memory_format=torch.channels_last))

    ours = timed(lambda: ours_fn(x), 3, sizes["reps"], device)
    theirs = timed(peer, 3, sizes["reps"], device)
    result = row(
        f"inference {name}, batch {batch}, {precision}",
        batch / ours,
        batch / theirs,
        "images/s",
        1.25,
        f"{peer_label(name)}, compiled, channels_last, autocast",
        notes=f"ours ran the {ours_fn.engine} engine in {ours_fn.precision}",
    )
    # what was timed as ours: a fallback after a failed check would show here, not pass for the fast engine
    result.update(engine=ours_fn.engine, precision=ours_fn.precision, max_difference=ours_fn.max_difference)
    return [result]


# -- throughput: the training step, 224×224, batch 256, bf16 -----------------------------------------


def throughput(sizes: dict, device: torch.device) -> list[dict]:
    return [train_step_speed(name, device, sizes) for name in sizes["models"]]


def train_step_speed(name: str, device: torch.device, sizes: dict) -> dict:
    """Images/s of our training step (the trainer's own) against the peer's compiled eager step."""
    batch, size, reps = sizes["batch"], sizes["image_size"], sizes["reps"]
    precision = "bf16" if device.type == "cuda" else "fp32"
    fast = {"precision": precision, "channels_last": True, "compile": sizes["compile"]}
    config = resolve(
        "imagenet-paper",
        {
            "data.source": "synthetic",
            "data.mode": "tensor",
            "data.augment": "none",
            "data.image_size": size,
            "batch_size": batch,
            **fast,
        },
        model=name,
        device=str(device),
        iters=1,
        epochs=0,
    )
    with temporary_trainer(config) as trainer:
        x, y = next(train_batches(trainer))
        ours = timed(lambda: trainer.train_step(x, y, 0.1), 3, reps, device)

    model = reference(name, device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    compiled = torch.compile(model) if sizes["compile"] != "none" else model
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


# -- feeding: training from a folder of ImageNet-size JPEGs ------------------------------------------


def make_jpeg_folder(root: Path, count: int, size: tuple[int, int], distinct: int = 256) -> Path:
    """`count` photo-like JPEGs of `size` in two class folders (smooth random fields, not noise): `distinct`
    images, repeated (decoding costs the same; encoding tens of thousands would cost minutes)."""
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(min(count, distinct)):
        small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize(size, Image.BICUBIC).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    for i in range(count):
        folder = root / "train" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.jpg").write_bytes(encoded[i % len(encoded)])
    return root


def feeding(sizes: dict, device: torch.device) -> list[dict]:
    """Images/s of training from a folder of JPEGs (decoded by the workers) against the same step on a
    resident batch. The timed window starts synchronized, once the batches the workers decoded ahead
    (workers × their prefetch depth) are used up: it measures the steady rate, not a full queue."""
    from resnet.data.loader import prefetch_factor

    size, batch, steps, workers = sizes["jpeg_size"], sizes["batch"], sizes["steps"], sizes["workers"]
    ahead = workers * prefetch_factor(workers, batch * 3 * sizes["image_size"] ** 2) + 1
    # one epoch holds every step: a new epoch restarts the workers, which a long real epoch amortizes
    test_fraction = 0.05
    count = math.ceil((ahead + steps + 2) * batch / (1 - test_fraction))
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpeg_folder(Path(tmp), count, size)
        overrides = {
            "data.source": str(folder),
            "data.mode": "stream",
            "data.augment": "random-resized-crop",
            "data.image_size": sizes["image_size"],
            "batch_size": batch,
            "channels_last": True,
            "precision": "bf16" if device.type == "cuda" else "fp32",
            "data.test_fraction": test_fraction,
            "data.workers": workers,
        }
        config = resolve("imagenet-paper", overrides, model=sizes["model"], device=str(device), iters=1, epochs=0)
        with temporary_trainer(config) as trainer:
            x, y = next(train_batches(trainer))
            loop = trainer.steps(end=trainer.step + ahead + steps)
            train_steps(loop, ahead)  # untimed: workers started, the queue they filled used up
            synchronize(device)
            start = time.perf_counter()
            train_steps(loop, steps)
            synchronize(device)
            ours = steps * batch / (time.perf_counter() - start)
            synthetic = batch / timed(lambda: trainer.train_step(x, y, 0.1), 2, steps, device)
    return [
        row(
            f"training from JPEG folder ({size[0]}×{size[1]}) vs synthetic input",
            ours,
            synthetic,
            "images/s",
            0.8,
            "the same training step on a resident batch",
            notes=f"{workers} workers, {ahead - 1} batches decoded ahead (untimed)",
        )
    ]


# -- cifar: the paper's CIFAR schedule, end to end ---------------------------------------------------


def cifar(sizes: dict, device: torch.device, data: str | None) -> list[dict]:
    name, iters = sizes["model"], sizes["iters"]
    fast = {
        "channels_last": True,
        "precision": "bf16" if device.type == "cuda" else "fp32",
        # end to end, compilation counts: CUDA graphs (reduce-overhead) without max-autotune's kernel search
        "compile": sizes["compile"],
        "log.evals": 4,
    }
    start = time.perf_counter()
    overrides = {"data.source": data, **fast, **sizes["overrides"]}
    config = resolve("cifar-paper", overrides, model=name, device=str(device), iters=iters)
    with temporary_trainer(config) as trainer:
        result = trainer.run()
        ours = time.perf_counter() - start
    peer_steps = sizes["peer_steps"]
    peer_seconds, peer_accuracy = eager_cifar_loop(name, data, device, peer_steps, iters, batch=config.batch_size)
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


# -- speedrun: the speedrun recipe (ResNet-9) against airbench94, time to accuracy -------------------

TARGET_ACCURACY = 0.905  # airbench94's accuracy on cifar10-jpeg (the issue's figure)


def speedrun(sizes: dict, device: torch.device, data: str | None, plot: Path) -> list[dict]:
    """Seconds of training and flip-TTA test accuracy of the `speedrun` recipe at several lengths, 5 seeds
    each, and the same of airbench94 on the same data (on CUDA, where it must be installed: a GPU run
    without its peer fails at once rather than reporting a blank). Both are timed the same way, as
    airbench times itself: from the network built and the data resident on the device to the trained
    network, synchronized (the optimizer's setup and airbench's whitening init inside, evaluation
    outside). Writes the time-to-accuracy plot to `plot`."""
    if device.type == "cuda":
        _import_airbench()  # before any of our runs: a missing peer costs seconds, not the section
    seeds = range(sizes["seeds"])
    if sizes["warmup"]:
        _speedrun_ours(sizes, data, device, 1, 0)  # warm-up: data decoded and cached, cuDNN autotuning
    ours = [_speedrun_ours(sizes, data, device, e, seed) for e in sizes["epochs"] for seed in seeds]
    peer = _airbench_runs(data, (6, 8, 9.9), seeds) if device.type == "cuda" else []
    _time_to_accuracy_plot({"ours (speedrun, resnet9)": ours, "airbench94": peer}, plot)
    target = f"{100 * TARGET_ACCURACY:.1f}%"
    mine, theirs = _fastest_to(ours), _fastest_to(peer) if peer else None
    result = row(
        f"speedrun: seconds of training to {target} test accuracy (mean of {len(seeds)} runs)",
        mine["seconds"],
        theirs["seconds"] if theirs else None,
        "s",
        1.0,
        f"airbench94 {AIRBENCH_VERSION}" if peer else "airbench94 (not run: it needs CUDA)",
        higher_is_better=False,
        notes=_reached(mine, "ours") + _reached(theirs, "peer") + f"ours {_summary(ours)}; peer {_summary(peer)}",
    )
    result["runs"] = {"ours": ours, "peer": peer}  # every run: epochs, seed, seconds, accuracy
    return [result]


AIRBENCH_VERSION = "0.1.8"  # the peer's release, as benchmarks/gpu.sh carries it


def _import_airbench():
    try:
        import airbench
    except ImportError:
        raise UsageError(
            f"speedrun's peer is missing: pip install airbench=={AIRBENCH_VERSION} (benchmarks/gpu.sh puts "
            "its carried sdist on PYTHONPATH)"
        ) from None
    return airbench


def _speedrun_ours(sizes: dict, data: str | None, device: torch.device, epochs: float, seed: int) -> dict:
    from resnet.train.evaluate import evaluate_batches

    overrides = {"data.source": data, "seed": seed, **sizes["overrides"]}
    config = resolve("speedrun", overrides, device=str(device), epochs=epochs)
    with temporary_trainer(config) as trainer:
        synchronize(device)
        start = time.perf_counter()
        train_steps(trainer.steps(), trainer.total)
        synchronize(device)
        seconds = time.perf_counter() - start
        test = trainer.eval_loaders["test"]
        metrics = evaluate_batches(
            trainer.model,
            test.eval_batches(tta="flip"),
            len(trainer.data.classes),
            tta="flip",
            autocast=trainer.autocast,
        )
    return {"epochs": epochs, "seed": seed, "seconds": seconds, "accuracy": 1 - metrics["top1_error"]}


def _airbench_runs(data: str | None, epochs: tuple[float, ...], seeds) -> list[dict]:
    """airbench94 on the same decoded images: it reads cifar10/{train,test}.pt from the working folder."""
    airbench = _import_airbench()
    from airbench.lib_airbench94 import hyp

    arrays = load_data(resolve("speedrun", {"data.source": data}).data).splits
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "cifar10").mkdir()
        for split in ("train", "test"):
            images = arrays[split].images.permute(0, 2, 3, 1).contiguous()  # airbench keeps N×H×W×C uint8
            state = {"images": images, "labels": arrays[split].labels, "classes": arrays[split].classes}
            torch.save(state, folder / "cifar10" / f"{split}.pt")
        cwd = Path.cwd()
        os.chdir(folder)
        try:
            test = airbench.CifarLoader("cifar10", train=False, batch_size=2000)

            def one(e: float, seed: int) -> dict:
                torch.manual_seed(seed)
                train = airbench.CifarLoader("cifar10", train=True, batch_size=1024, aug=hyp["aug"], altflip=True)
                opened = []

                def make_net():  # train94 builds its net (after loading its test set): the window opens here
                    net = airbench.make_net94()
                    torch.cuda.synchronize()
                    opened.append(time.perf_counter())
                    return net

                model = airbench.train94(train, epochs=e, make_net=make_net, verbose=False)
                torch.cuda.synchronize()
                seconds = time.perf_counter() - opened[0]
                accuracy = airbench.evaluate(model, test, tta_level=hyp["net"]["tta_level"])
                return {"epochs": e, "seed": seed, "seconds": seconds, "accuracy": float(accuracy)}

            one(epochs[0], 0)  # warm-up: cuDNN autotuning
            return [one(e, seed) for e in epochs for seed in seeds]
        finally:
            os.chdir(cwd)  # before the folder is removed


def _by_length(runs: list[dict]) -> list[dict]:
    """Mean and spread of time and accuracy for each length of run."""
    lengths = sorted({r["epochs"] for r in runs})
    out = []
    for e in lengths:
        group = [r for r in runs if r["epochs"] == e]
        acc, sec = [r["accuracy"] for r in group], [r["seconds"] for r in group]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        out.append({"epochs": e, "seconds": statistics.mean(sec), "accuracy": statistics.mean(acc), "spread": spread})
    return out


def _fastest_to(runs: list[dict]) -> dict:
    """The shortest length whose mean accuracy reaches the target; the longest when none does (the
    summary in the notes shows the accuracies)."""
    groups = _by_length(runs)
    return next((g for g in groups if g["accuracy"] >= TARGET_ACCURACY), groups[-1])


def _reached(group: dict | None, who: str) -> str:
    return "" if group is None or group["accuracy"] >= TARGET_ACCURACY else f"{who}: target not reached; "


def _summary(runs: list[dict]) -> str:
    if not runs:
        return "not run"
    return ", ".join(
        f"{g['epochs']:g} ep {g['seconds']:.2f} s {100 * g['accuracy']:.2f}±{100 * g['spread']:.2f}%"
        for g in _by_length(runs)
    )


def _time_to_accuracy_plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs in curves.items():
        groups = _by_length(runs)
        if groups:
            ax.errorbar(
                [g["seconds"] for g in groups],
                [100 * g["accuracy"] for g in groups],
                yerr=[100 * g["spread"] for g in groups],
                marker="o",
                capsize=3,
                label=label,
            )
    ax.axhline(100 * TARGET_ACCURACY, color="gray", linestyle="--", linewidth=1)
    ax.set(xlabel="seconds of training", ylabel="test accuracy (%)", title="CIFAR-10 (JPEG copy): time to accuracy")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def default_sections(cuda: bool, quick: bool) -> list[str]:
    """What a run without --only measures: every section in --quick; on a GPU host the GPU sections
    (the cpu section's figures belong to a CPU host); elsewhere the cpu section."""
    if quick:
        return list(SECTIONS)
    return [s for s in SECTIONS if (s == "cpu") != cuda]


def load_results(out: Path, env: dict, quick: bool) -> dict:
    """The results file `out` to add to: its sections measured earlier are kept (a later run of the same
    section replaces its rows), so that one section per process still makes one file."""
    results = json.loads(out.read_text()) if out.exists() else {}
    if results.get("quick") != quick:
        results = {"rows": [], "sections": {}}
    return {"environment": env, "quick": quick, "sections": results["sections"], "rows": results["rows"]}


def save_results(out: Path, results: dict) -> None:
    """Write `results` to `out` whole or not at all (a kill while writing leaves the previous file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(results, indent=2))
    os.replace(partial, out)


def compiled() -> dict:
    """What torch.compile did in this process so far: frames compiled (more than the compiled functions
    means recompilations) and the compiled graphs that inductor did not put in CUDA graphs (0 expected)."""
    from torch._dynamo.utils import counters

    return {"compiled_frames": counters["frames"]["ok"], "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}


def run_section(name: str, runner: Callable[[], list[dict]], results: dict, out: Path) -> bool:
    """Run one section and write its rows at once; a failure costs only this section, recorded in one
    line (the traceback goes to stderr). True when it succeeded."""
    start = time.perf_counter()
    try:
        rows, status = runner(), "ok"
    except Exception as e:  # any failure of one section must leave the others measured
        traceback.print_exc()
        rows, status = [], f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        print(f"{name} {status}", file=sys.stderr, flush=True)
    results["rows"] = [r for r in results["rows"] if r.get("section") != name] + [{**r, "section": name} for r in rows]
    results["sections"][name] = {"status": status, "seconds": round(time.perf_counter() - start, 1), **compiled()}
    save_results(out, results)
    return status == "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU: plumbing, not timing")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument(
        "--data", help="cifar, speedrun: CIFAR-10 (e.g. cifar10-jpeg.tar.gz); default the embedded subset"
    )
    parser.add_argument(
        "--out", type=Path, help="JSON results, added to when it exists (default: benchmarks/results/DATE-DEVICE.json)"
    )
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the table of a results file and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())["rows"]))
        return 0
    sizes = SIZES["quick" if args.quick else "full"]
    cuda = torch.cuda.is_available() and not sizes["on_cpu"]
    device = torch.device("cuda" if cuda else "cpu")  # of the GPU sections; the cpu section runs on the CPU
    sections = args.only or default_sections(cuda, args.quick)
    env = environment()
    kind = "quick" if args.quick else device.type
    out = args.out or Path(__file__).parent / "results" / f"{env['date']}-{kind}.json"
    runners = {
        "cpu": lambda: cpu(sizes["cpu"]),
        "inference": lambda: inference(sizes["inference"], device),
        "throughput": lambda: throughput(sizes["throughput"], device),
        "feeding": lambda: feeding(sizes["feeding"], device),
        "cifar": lambda: cifar(sizes["cifar"], device, args.data),
        "speedrun": lambda: speedrun(sizes["speedrun"], device, args.data, out.parent / f"speedrun-{kind}.png"),
    }
    results = load_results(out, env, args.quick)
    ok = [run_section(section, runners[section], results, out) for section in sections]
    print(table(results["rows"]))
    print(f"\n{out}: {results['environment']}")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
