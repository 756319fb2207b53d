import importlib
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

runtime = importlib.import_module("resnet.train.runtime")


def test_native_bf16_agrees_with_the_kernels_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo on this system")
    flags = set(cpuinfo.read_text().split())
    assert runtime.native_bf16(torch.device("cpu")) == bool({"avx512_bf16", "amx_bf16"} & flags)


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
