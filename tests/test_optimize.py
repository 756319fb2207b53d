import pytest
import torch

from resnet import create_model
from resnet.optimize import fold_batch_norm, for_inference


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
