import importlib

import pytest
import torch

from resnet import create_model
from resnet.optimize import TOLERANCE, fold_batch_norm, for_inference, in_force


def _trained_statistics(model, size):
    """Non-trivial BN statistics and affine parameters, as after training."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        model.train()
        for _ in range(3):
            model(torch.randn(16, 3, size, size))
    return model.eval()


@pytest.mark.parametrize(
    "name, options, size",
    [
        ("resnet20", {}, 32),
        ("resnet20", {"shortcut": "C"}, 32),
        ("plain20", {}, 32),
        ("resnet50", {}, 64),
        ("resnet18", {"shortcut": "A"}, 64),
    ],
)
def test_folding_keeps_the_outputs_in_float32(name, options, size):
    model = _trained_statistics(create_model(name, **options), size)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max() + 1e-6


def test_for_inference_fp32_and_bf16():
    model = _trained_statistics(create_model("resnet20"), 32)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    fast = for_inference(model, "cpu", precision="fp32", compile=False)
    assert torch.allclose(fast(x), expected, atol=1e-5)
    half = for_inference(model, "cpu", precision="bf16", compile=False)(x)
    assert half.dtype == torch.float32 and (half - expected).norm() / expected.norm() < 0.05


def test_for_inference_compiled():
    model = _trained_statistics(create_model("resnet20"), 32)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(for_inference(model, "cpu", precision="fp32")(x), expected, atol=1e-4)


# -- engines: every one checked against the float32 model -----------------------------------------

from resnet import optimize  # noqa: E402
from resnet.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def trained20():
    torch.manual_seed(0)
    return _trained_statistics(create_model("resnet20"), 32)


@pytest.mark.parametrize(
    "engine, precision",
    [("openvino", "fp32"), ("openvino", "bf16"), ("onnxruntime", "fp32"), ("torch", "bf16")],
)
def test_every_engine_gives_the_models_outputs_within_its_tolerance(trained20, engine, precision):
    pytest.importorskip(engine)
    if engine == "openvino" and precision == "bf16" and not optimize.native_bf16(torch.device("cpu")):
        with pytest.raises(UsageError, match="bf16 only on CPUs with native bf16"):  # refused, not emulated
            optimize.for_inference(trained20, "cpu", precision=precision, engine=engine)
        return
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        expected = trained20(x)
    fast = optimize.for_inference(trained20, "cpu", precision=precision, engine=engine, compile=False)
    got = fast(x)
    assert (fast.engine, fast.precision) == (engine, precision)  # no fallback was needed
    assert got.dtype == torch.float32 and got.shape == expected.shape
    relative = (got - expected).abs().max() / expected.abs().max().clamp_min(1)
    assert relative <= optimize.TOLERANCE[precision]
    if precision == "fp32":
        assert relative <= 1e-5
    assert fast.max_difference == pytest.approx(relative.item(), rel=1e-3, abs=1e-7)
    again = fast(x[:3])  # another batch size: compiled and checked on its own
    assert torch.allclose(again, got[:3], atol=1e-2 * expected.abs().max().item())


def test_an_engine_that_gets_it_wrong_is_replaced_by_float32_torch(trained20, monkeypatch):
    def broken(model, device, precision, **options):
        return lambda x: torch.zeros(len(x), 10)

    monkeypatch.setitem(optimize.BUILDERS, "openvino", broken)
    monkeypatch.setattr(optimize, "_installed", lambda package: True)
    x = torch.randn(4, 3, 32, 32)
    fast = optimize.for_inference(trained20, "cpu", precision="fp32")
    assert fast.engine == "openvino"
    with pytest.warns(UserWarning, match="differs from the float32 model"):
        got = fast(x)
    assert (fast.engine, fast.precision) == ("torch", "fp32")
    with torch.no_grad():
        assert torch.allclose(got, trained20(x), atol=1e-5)
        assert torch.allclose(fast(x), trained20(x), atol=1e-5)


def test_auto_takes_openvino_when_installed_and_bf16_where_the_cpu_has_it(trained20, monkeypatch):
    runtime = importlib.import_module("resnet.train.runtime")
    monkeypatch.setattr(optimize, "_installed", lambda package: False)
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    fast = optimize.for_inference(trained20, compile=False)
    assert repr(fast) == "Inference(engine='torch', precision='fp32', device='cpu')"
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    monkeypatch.setattr(optimize, "native_bf16", lambda device: True)
    monkeypatch.setattr(optimize, "_installed", lambda package: package == "openvino")
    fast = optimize.for_inference(trained20)
    assert (fast.engine, fast.precision) == ("openvino", "bf16")
    # bf16 asked for on a CPU without it: OpenVINO refuses emulated bf16, so auto takes torch
    monkeypatch.setattr(optimize, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        fast = optimize.for_inference(trained20, precision="bf16", compile=False)
    assert (fast.engine, fast.precision) == ("torch", "bf16")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"engine": "tensorrt"}, "unknown inference engine 'tensorrt'"),
        ({"engine": "onnxruntime", "precision": "bf16"}, "float32 only"),
        ({"precision": "fp16"}, "'fp16' is not one of"),
    ],
)
def test_bad_engine_options_are_refused(trained20, kwargs, message):
    with pytest.raises(UsageError, match=message):
        optimize.for_inference(trained20, "cpu", **kwargs)


def test_the_check_runs_its_float32_copy_on_the_engines_device():
    # "meta" stands in for a GPU: a reference left where the model was (the CPU) would fail on its inputs
    model = create_model("resnet20").train()
    fast = for_inference(model, "meta", precision="fp32", compile=False)
    assert {p.device.type for p in fast.reference.parameters()} == {"meta"}
    assert not fast.reference.training
    # the caller's model is neither moved nor switched to eval mode
    assert {p.device.type for p in model.parameters()} == {"cpu"} and model.training


def test_fp32_on_cuda_is_checked_at_the_tf32_tolerance_while_tf32_is_allowed():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")  # a device name: no GPU needed
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    try:
        conv.fp32_precision = "tf32"  # torch's default for cuDNN convolutions
        assert in_force("fp32", cuda) == "tf32" and in_force("bf16", cuda) == "bf16"
        assert in_force("fp32", cpu) == "fp32"
        conv.fp32_precision = "ieee"
        assert in_force("fp32", cuda) == "fp32"
    finally:
        conv.fp32_precision = before
    assert TOLERANCE["fp32"] < TOLERANCE["tf32"] < TOLERANCE["bf16"]


def test_a_last_partial_batch_is_padded_to_a_compiled_size_not_compiled_anew():
    model = create_model("resnet20").eval()
    fast = for_inference(model, "cpu", precision="fp32", engine="torch", compile=False)
    x = torch.randn(8, 3, 32, 32)
    fast(x)
    with torch.no_grad():
        last = fast(x[:3])  # 10,000 % 256 images, say: run as a batch of 8
        assert torch.allclose(last, model(x[:3]), atol=1e-4) and last.shape == (3, 10)
    assert fast._checked == {(8, 3, 32, 32)}
    fast(torch.randn(2, 3, 40, 40))  # another image size is a shape of its own
    assert fast._checked == {(8, 3, 32, 32), (2, 3, 40, 40)}
