"""A trained network for other runtimes: ONNX, TorchScript, safetensors or OpenVINO IR, each verified
against the PyTorch model before it is written. The file also carries what it takes to use the network: model
name and options, classes, normalization (mean/std on 0-255 pixels) and input size."""

from __future__ import annotations

import io
import json
import os
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import run_folder
from .errors import UsageError, write_failed
from .inference import Classifier, evaluate, load
from .models import input_shape
from .models.weights import EXPORT_FORMAT, SHIPPED_DIR, SHIPPED_TAGS
from .optimize import import_openvino, onnx_bytes, openvino_model

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors", "openvino": ".xml"}
TOLERANCE = 1e-4  # fp32: the largest difference from the PyTorch model's logits accepted


@dataclass(frozen=True)
class ExportResult:
    """The file written, its format, and the largest |difference| of its logits from the PyTorch
    model's on random batches of `batch_size` and `batch_size + 1` images."""

    path: Path
    format: str
    max_abs_diff: float
    batch_size: int


def metadata(classifier: Classifier) -> dict[str, str]:
    """What a user of the exported file needs, each value JSON-encoded (safetensors metadata is str → str)."""
    values = {
        "model_name": classifier.model_name,
        "model_options": classifier.model_options,
        "classes": classifier.classes,
        "normalize": {k: v.tolist() for k, v in classifier.normalize.state_dict().items()},
        "image_size": classifier.image_size,
        "eval_resize": classifier.eval_resize,
        "data": classifier.config.data.source,
    }
    return {"format": EXPORT_FORMAT, **{k: json.dumps(v) for k, v in values.items()}}


def export_model(
    checkpoint: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    batch_size: int = 2,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Write the network of `checkpoint` (from `resnet train`) as `format` to `out` (default: beside
    the checkpoint, e.g. best.onnx), after checking that the written file, run by its own runtime
    (onnxruntime, torch.jit, `create_model(weights=...)`), gives the model's logits within
    `tolerance` × max(1, largest logit) on random batches of `batch_size` and `batch_size + 1` (the batch
    axis is dynamic).

    On failure UsageError, and nothing is written (an earlier file at `out` is left as it was).
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    if batch_size < 2:
        raise UsageError(f"the verification batch must hold at least 2 images, not {batch_size}")
    classifier = load(checkpoint, "cpu")
    out = Path(out) if out is not None else Path(checkpoint).with_suffix(FORMATS[format])
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such folder")
    shape = input_shape(classifier.model_name, classifier.image_size, **classifier.model_options)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, *shape, generator=generator) for n in (batch_size, batch_size + 1)]
    # OpenVINO IR is two files, the graph (.xml) and the weights beside it (.bin, same stem)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    pairs = [(tmp, out)] + ([(tmp.with_suffix(".bin"), out.with_suffix(".bin"))] if format == "openvino" else [])
    try:
        run = WRITERS[format](classifier, batches[0], tmp)
        with torch.no_grad():
            expected = [classifier.model(x) for x in batches]
            diff = max((run(x) - y).abs().max().item() for x, y in zip(batches, expected))
        # fp32 rounding grows with the logits' size: an untrained net's can reach 1e7
        scale = max(1.0, *(y.abs().max().item() for y in expected))
        if not diff < tolerance * scale:
            raise UsageError(
                f"the {format} export's logits differ from the model's by {diff:.2e} "
                f"(tolerance {tolerance:.0e} × max(1, largest logit) = {tolerance * scale:.1e}); nothing was written"
            )
        for written, final in reversed(pairs):  # the weights before the graph that names them
            os.replace(written, final)
    except (OSError, RuntimeError) as e:  # a full disk comes as either, depending on the writer
        raise write_failed(
            out, e, f"nothing was written{' (the file there is intact)' if out.exists() else ''}"
        ) from None
    finally:
        for written, _ in pairs:
            written.unlink(missing_ok=True)
    return ExportResult(out, format, diff, batch_size)


Runner = Callable[[torch.Tensor], torch.Tensor]


def _onnx(classifier: Classifier, x: torch.Tensor, path: Path) -> Runner:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UsageError("ONNX export needs onnx and onnxruntime: pip install 'resnet[export]'") from None
    proto = onnx.load_from_string(onnx_bytes(classifier.model, x))
    onnx.helper.set_model_props(proto, metadata(classifier))
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda batch: torch.from_numpy(session.run(None, {"input": batch.numpy()})[0])


def _torchscript(classifier: Classifier, x: torch.Tensor, path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notes
        traced = torch.jit.trace(classifier.model, x, check_trace=False)  # verified below, on two batch sizes
        buffer = io.BytesIO()  # a write that fails inside torch's C++ writer would abort the process
        torch.jit.save(traced, buffer, _extra_files={"resnet.json": json.dumps(metadata(classifier))})
        path.write_bytes(buffer.getvalue())
        loaded = torch.jit.load(str(path))
    return loaded


def _safetensors(classifier: Classifier, x: torch.Tensor, path: Path) -> Runner:
    from safetensors.torch import save

    from .models import create_model

    state = {k: v.contiguous() for k, v in classifier.model.state_dict().items()}
    path.write_bytes(save(state, metadata=metadata(classifier)))
    reloaded = create_model(classifier.model_name, weights=path).eval()
    return reloaded


def _openvino(classifier: Classifier, x: torch.Tensor, path: Path) -> Runner:
    ov = import_openvino()
    graph = openvino_model(classifier.model, x)
    for key, value in metadata(classifier).items():
        graph.set_rt_info(value, ["resnet", key])
    ov.save_model(graph, str(path), compress_to_fp16=False)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda batch: torch.from_numpy(compiled(batch.numpy())[0].copy())


WRITERS: dict[str, Callable[[Classifier, torch.Tensor, Path], Runner]] = {
    "onnx": _onnx,
    "torchscript": _torchscript,
    "safetensors": _safetensors,
    "openvino": _openvino,
}


# -- the weights this package ships ----------------------------------------------------------------


def ship(
    run: str | Path,
    tag: str = "cifar10",
    data: str | None = None,
    out: str | Path | None = None,
    commit: str | None = None,
) -> Path:
    """The final weights of the finished run in `run` as the package's shipped weights `tag`
    (`create_model(model, weights=tag)`): a safetensors file (default SHIPPED_DIR/MODEL-TAG.safetensors),
    stored in float16 where that leaves the confusion matrices on the test splits of `data` (default:
    the run's own data) and of the embedded subset as float32 gives them, else in float32. Beside
    `metadata()`'s, its metadata records recipe, data, iterations, storage, the code's commit and the
    errors measured by `evaluate` on the file as written, in float32 on the CPU (the same on every CPU, with
    or without native bf16): `test_error` (the test split of `data`) and `subset_error` (the embedded
    subset's, what the test suite checks). `commit`: the code's commit (default:
    the clone's HEAD, where the package runs from one). Returns the file's path."""
    run = Path(run)
    if tag not in SHIPPED_TAGS:
        raise UsageError(f"unknown shipped weights tag {tag!r}; choose one of: {', '.join(SHIPPED_TAGS)}")
    if not run_folder.finished(run) or not (run / run_folder.LAST).is_file():
        raise UsageError(f"{run}: not a finished run with its {run_folder.LAST} (ship a run that reached its end)")
    classifier = load(run / run_folder.LAST, "cpu")
    config = run_folder.read_config(run) or {}
    data = data or config["data"]["source"] or "embedded"
    out = Path(out) if out is not None else SHIPPED_DIR / f"{classifier.model_name}-{tag}.safetensors"
    meta = {
        "recipe": config.get("recipe"),
        "data": Path(data).name,
        "iterations": run_folder.read(run)[-1]["step"],
        "commit": commit or _commit(),
    }
    tmp = {
        dtype: out.with_name(f".{out.stem}.{dtype}.tmp{os.getpid()}{out.suffix}") for dtype in ("float16", "float32")
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # the package's first shipped file makes its folder
        half, full = (_write_shipped(classifier, path, dtype, meta, data) for dtype, path in tmp.items())
        os.replace(tmp["float16" if half == full else "float32"], out)
    except (OSError, RuntimeError) as e:  # a full disk comes as either, depending on the writer
        raise write_failed(out, e, "nothing was written") from None
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return out


def _write_shipped(classifier: Classifier, path: Path, dtype: str, meta: dict, data: str) -> tuple:
    """Write the weights stored as `dtype` with `meta` and their errors, measured on the file; return
    its confusion matrices on `data` and on the embedded subset."""
    from safetensors.torch import save

    state = {
        k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v for k, v in classifier.model.state_dict().items()
    }
    state = {k: v.contiguous() for k, v in state.items()}
    path.write_bytes(save(state, metadata={**metadata(classifier), **_encode({**meta, "storage": dtype})}))
    name = classifier.model_name
    on = {
        source: evaluate(path, data=source, model=name, device="cpu", engine="torch", precision="fp32")
        for source in {data, "embedded"}
    }
    measured = {"storage": dtype, "test_error": on[data]["top1_error"], "subset_error": on["embedded"]["top1_error"]}
    path.write_bytes(save(state, metadata={**metadata(classifier), **_encode({**meta, **measured})}))
    return on[data]["confusion"], on["embedded"]["confusion"]


def _encode(values: dict) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in values.items()}


def _commit() -> str | None:
    """The code's git commit, where the package runs from a clone."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    return found.stdout.strip() or None
