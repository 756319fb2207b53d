"""Inference at the speed of the hardware, verified: `for_inference` returns a function computing a
model's eval-mode outputs on a fast engine at hand, each new input shape checked once against
the float32 model.

Engines (`ENGINES`):
- torch: batch norm folded into the convolutions, channels-last, bf16 weights where the device has
  native bf16, and torch.compile (on the CPU inductor with the weights frozen into oneDNN's layouts;
  on CUDA "max-autotune", which captures CUDA graphs). No extra package.
- openvino: OpenVINO's CPU runtime (the package's `cpu` extra), one compiled model per input shape.
- onnxruntime: ONNX Runtime's CPU runtime, float32 only.

engine="auto" takes OpenVINO on a CPU when it is installed (BENCHMARKS.md's `cpu` section compares it
with the other engines), else torch.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from .errors import UsageError
from .train.runtime import native_bf16, resolve_precision

ENGINES = ("auto", "torch", "openvino", "onnxruntime")
PRECISIONS = ("auto", "fp32", "bf16")  # of inference: auto is bf16 where the device computes it natively
# largest accepted |output - float32 output| / max(1, largest |float32 output|): float32 engines differ
# by rounding; bf16 keeps 8 bits of mantissa (0.4% per value; 0.5-0.7% of the largest logit measured);
# tf32 (float32 on CUDA, where cuDNN rounds convolutions' inputs to TF32 by default) keeps 11, 8× finer than bf16
TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3, "bf16": 3e-2}
OPSET = 17  # ONNX operator set of every graph this package writes


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` in which every batch norm that follows a convolution is folded
    into it (W' = W·γ/σ, b' = β + (b − μ)·γ/σ). Same outputs, fewer kernels. `model` is unchanged."""
    return fuse(copy.deepcopy(model).eval())


class Inference:
    """`model`'s eval-mode outputs as float32 tensors on `device`, computed by `engine` in `precision`.

    Call it on a batch; the first call of each input shape compiles (torch, openvino) and checks the
    outputs against the float32 model (a copy on `device`) within the tolerance of the precision in
    force (`in_force`: fp32 on CUDA is tf32 by torch's defaults), falling back to the float32 torch
    engine (with a warning) if they differ more. A batch smaller than one of the same image shape
    already run (a job's last) is padded to it rather than compiled for its own size: eval-mode
    outputs are per image. `engine` and `precision` say what runs."""

    def __init__(self, model: nn.Module, device: torch.device, engine: str, precision: str, **options) -> None:
        # a float32 copy on the engine's device: the check runs there, and `model` stays as it was
        self.reference = copy.deepcopy(model).eval().to(device=device, dtype=torch.float32)
        self.device, self.engine, self.precision = device, engine, precision
        self.max_difference = 0.0  # the largest relative difference seen in the checks
        self._run = BUILDERS[engine](model, device, precision, **options)
        self._checked: set[tuple[int, ...]] = set()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        larger = [shape[0] for shape in self._checked if shape[1:] == tuple(x.shape[1:]) and shape[0] > len(x)]
        if larger:  # a job's last, partial batch: padded to a batch size already compiled, not compiled anew
            padding = x.new_zeros((min(larger) - len(x), *x.shape[1:]))
            return self(torch.cat([x, padding]))[: len(x)]
        out = self._run(x)
        if tuple(x.shape) not in self._checked:
            out = self._check(x, out)
            self._checked.add(tuple(x.shape))
        return out

    def _check(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        expected = self.reference(x.to(self.device)).float()
        difference = (out - expected).abs().max().item() / max(1.0, expected.abs().max().item())
        tolerance = TOLERANCE[in_force(self.precision, self.device)]
        if difference <= tolerance:
            self.max_difference = max(self.max_difference, difference)
            return out
        warnings.warn(
            f"the {self.engine} engine ({self.precision}) differs from the float32 model by {difference:.1e} of the "
            f"largest output (tolerance {tolerance:.0e}): using the float32 torch engine",
            stacklevel=3,
        )
        self.engine, self.precision, self.max_difference = "torch", "fp32", 0.0
        self._run = _torch(self.reference, self.device, "fp32", compile=False)
        self._checked.clear()
        return expected

    def __repr__(self) -> str:
        return f"Inference(engine={self.engine!r}, precision={self.precision!r}, device={str(self.device)!r})"


def in_force(precision: str, device: torch.device) -> str:
    """The arithmetic `precision` gets on `device`: "tf32" for "fp32" on CUDA while torch lets cuDNN's
    convolutions or cuBLAS's products round to TF32 (convolutions do by default), else `precision`."""
    if precision != "fp32" or device.type != "cuda":
        return precision
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is None:  # torch < 2.9: only the legacy flags (which raise once the new ones were set)
        tf32 = torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
    else:
        tf32 = "tf32" in (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    return "tf32" if tf32 else "fp32"


def for_inference(
    model: nn.Module,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    engine: str = "auto",
    channels_last: bool = True,
    compile: bool = True,
) -> Inference:
    """The fastest verified way to run `model` (eval mode) on `device`: an `Inference` callable.

    precision: "fp32", "bf16" (weights and activations in bfloat16), or "auto" (bf16 where the device
    has native bf16: GPUs, CPUs with AVX-512 BF16 or AMX; else fp32; always fp32 on onnxruntime).
    engine: one of ENGINES ("auto": OpenVINO on a CPU when installed, else torch). `channels_last` and
    `compile` tune the torch engine. Takes float32 batches of any size, returns float32; `model` is unchanged.
    """
    device = torch.device(device)
    if engine not in ENGINES:
        raise UsageError(f"unknown inference engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if engine == "auto":  # OpenVINO computes bf16 only natively: emulated bf16 is torch's
        emulated_bf16 = precision == "bf16" and not native_bf16(device)
        engine = "openvino" if device.type == "cpu" and _installed("openvino") and not emulated_bf16 else "torch"
    if engine != "torch" and device.type != "cpu":
        raise UsageError(f"the {engine} engine runs on the CPU, not on {device}")
    if engine == "onnxruntime" and precision == "auto":
        precision = "fp32"  # ONNX Runtime's CPU kernels are float32
    precision = resolve_precision(precision, device)
    if precision not in ("fp32", "bf16"):
        raise UsageError(f"inference precision {precision!r} is not one of: auto, fp32, bf16")
    if engine == "onnxruntime" and precision != "fp32":
        raise UsageError("the onnxruntime engine computes in float32 only: precision='fp32'")
    if engine == "openvino" and precision == "bf16" and not native_bf16(device):
        raise UsageError("the openvino engine computes bf16 only on CPUs with native bf16: precision='fp32'")
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(f"{device} has no native bf16: bf16 inference will be slower than fp32 there", stacklevel=2)
    options = {"channels_last": channels_last, "compile": compile} if engine == "torch" else {}
    return Inference(model, device, engine, precision, **options)


def _installed(package: str) -> bool:
    try:
        __import__(package)
    except ImportError:
        return False
    return True


def _torch(model: nn.Module, device: torch.device, precision: str, channels_last: bool = True, compile: bool = True):
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    fast = fold_batch_norm(model).to(device=device, dtype=dtype, memory_format=memory_format)
    for p in fast.parameters():
        p.requires_grad_(False)
    if compile and device.type == "cuda":
        fast = torch.compile(fast, mode="max-autotune")
    elif compile:  # inductor with the weights as constants, pre-packed for oneDNN's convolutions
        fast = torch.compile(fast, options={"freezing": True})

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device=device, dtype=dtype, non_blocking=True)
        if x.ndim == 4:
            x = x.contiguous(memory_format=memory_format)
        # a copy: a CUDA graph's outputs are overwritten by its next run
        return fast(x).to(torch.float32, copy=True)

    return run


def onnx_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    """`model` as an ONNX graph with a dynamic batch axis (input "input", output "logits")."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and constant-folding notes
        torch.onnx.export(
            model,
            (x,),
            buffer,
            dynamo=False,  # the torch.export-based exporter would need onnxscript as well
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return buffer.getvalue()


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise UsageError("the openvino engine needs OpenVINO (pip install openvino)") from None
    return openvino


def openvino_model(model: nn.Module, x: torch.Tensor):
    """`model` as an OpenVINO model with a dynamic batch axis, read from its ONNX graph (quicker than
    OpenVINO's own conversion from PyTorch, which traces the model)."""
    return import_openvino().Core().read_model(onnx_bytes(fold_batch_norm(model), x[:1].cpu()), b"")


def _openvino(model: nn.Module, device: torch.device, precision: str):
    core = import_openvino().Core()
    compiled = {}  # input shape -> compiled model: static shapes let the CPU plugin pick its kernels once
    hint = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY"}
    graph = None

    def run(x: torch.Tensor) -> torch.Tensor:
        nonlocal graph
        shape = tuple(x.shape)
        if shape not in compiled:
            graph = graph or openvino_model(model, x)
            static = graph.clone()
            static.reshape(list(shape))
            compiled[shape] = core.compile_model(static, "CPU", hint)
        # a copy: the outputs are the request's buffer, overwritten by its next run
        return torch.from_numpy(compiled[shape](x.float().numpy(force=True))[0].copy())

    return run


def _onnxruntime(model: nn.Module, device: torch.device, precision: str):
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("the onnxruntime engine needs ONNX Runtime (pip install onnxruntime)") from None
    session = None

    def run(x: torch.Tensor) -> torch.Tensor:
        nonlocal session
        if session is None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            graph = onnx_bytes(fold_batch_norm(model), x[:1].cpu())
            session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"input": x.float().numpy(force=True)})[0])

    return run


BUILDERS = {"torch": _torch, "openvino": _openvino, "onnxruntime": _onnxruntime}
