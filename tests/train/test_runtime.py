import importlib
from contextlib import nullcontext

import pytest
import torch

from resnet import UsageError
from resnet.config import resolve
from resnet.train.build import forward_pass

runtime = importlib.import_module("resnet.train.runtime")


def test_native_bf16_agrees_with_the_kernels_cpu_flags():
    flags = set(runtime.CPUINFO.read_text().split())  # Linux, as every machine this project runs on
    assert runtime.native_bf16(torch.device("cpu")) == bool({"avx512_bf16", "amx_bf16"} & flags)


@pytest.mark.parametrize(
    "flags, native", [("fpu avx512f avx512_bf16", True), ("fpu amx_bf16", True), ("fpu avx2", False)]
)
def test_without_torchs_probes_the_flags_decide(tmp_path, monkeypatch, flags, native):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    (tmp_path / "cpuinfo").write_text(f"processor : 0\nflags : {flags}\n")
    monkeypatch.setattr(runtime, "CPUINFO", tmp_path / "cpuinfo")
    assert runtime.native_bf16(torch.device("cpu")) is native
    monkeypatch.setattr(runtime, "CPUINFO", tmp_path / "missing")
    assert runtime.native_bf16(torch.device("cpu")) is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_exactly_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    cpu = runtime.Runtime(torch.device("cpu"))
    assert runtime.resolve_precision("auto", cpu.device) == ("bf16" if native else "fp32")
    assert runtime.resolve_precision("fp32", cpu.device) == "fp32"  # a named precision is kept
    context = cpu.autocast("auto")
    if native:
        assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
        with context:
            assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    else:
        assert isinstance(context, nullcontext)


def test_a_distributed_run_takes_one_gpu_per_process_and_no_cuda_graphs(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UsageError, match=r"device=cuda:1 would put all 2 processes on one GPU: use device=cuda"):
        runtime.setup("cuda:1")
    two_gpus = runtime.Runtime(torch.device("cuda", 0), rank=0, world=2)  # a device name: no GPU needed
    model = torch.nn.Linear(2, 2)
    for mode in ("reduce-overhead", "max-autotune"):
        config = resolve("cifar-paper", {"compile": mode})
        with pytest.raises(UsageError, match=f"compile={mode} with 2 processes: CUDA graphs are skipped"):
            forward_pass(model, config, two_gpus)
    one_gpu = runtime.Runtime(torch.device("cuda", 0))
    assert forward_pass(model, resolve("cifar-paper", {"compile": "none"}), one_gpu) is model
