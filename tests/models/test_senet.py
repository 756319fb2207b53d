"""Squeeze-and-excitation (Hu et al. 2018): the module, the `se` option and the named SE-ResNets
(their agreement with timm: test_timm_interop.py)."""

import pytest
import torch

from resnet import create_model, describe
from resnet.models import get_spec, list_models
from resnet.models.blocks import BasicBlock, Bottleneck, SqueezeExcite


def reduced(channels: int) -> int:
    """timm's width of the squeeze: channels / 16, rounded to a multiple of 8, at least 8."""
    return max(8, round(channels / 16 / 8) * 8)


@pytest.mark.parametrize("channels, width", [(16, 8), (64, 8), (128, 8), (256, 16), (2048, 128)])
def test_reduction_is_16_rounded_to_a_multiple_of_8(channels, width):
    se = SqueezeExcite(channels)
    assert (se.fc1.in_channels, se.fc1.out_channels, se.fc2.out_channels) == (channels, width, channels)
    assert se.fc1.bias is not None and se.fc2.bias is not None


def test_squeeze_excite_scales_each_channel_by_a_gate_of_the_pooled_features():
    se = SqueezeExcite(32)
    x = torch.randn(2, 32, 5, 5)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    assert torch.allclose(se(x), x * gate) and ((0 < gate) & (gate < 1)).all()


@pytest.mark.parametrize("name, base", [("seresnet50", "resnet50"), ("seresnext50_32x4d", "resnext50_32x4d")])
def test_the_named_models_are_the_option(name, base):
    with torch.device("meta"):
        named, built = create_model(name), create_model(base, se=True)
    assert str(named) == str(built)
    assert "se" not in get_spec(name).options


@pytest.mark.parametrize("name", ["resnet20", "resnext29_8x64d", "plain20"])
def test_se_on_cifar_networks(name):
    # every block's branch of C output channels gains two 1×1 convs with biases, C -> r -> C
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = create_model(name, se=True)
        assert model(torch.empty(2, 3, 32, 32)).shape == (2, 10)
    widths = [b.last_bn.num_features for b in model.modules() if isinstance(b, (BasicBlock, Bottleneck))]
    added = sum(2 * c * reduced(c) + reduced(c) + c for c in widths)
    assert describe(name, se=True)["params"] - describe(name)["params"] == added > 0


def test_zero_init_residual_still_starts_each_identity_block_as_the_identity():
    model = create_model("resnet20", se=True, zero_init_residual=True).eval()
    block = model.layer1[1]
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), torch.relu(x))


def test_the_family_lists_the_models():
    names = ["seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d"]
    assert list_models("se") == names
    assert get_spec("seresnext50_32x4d").description == "SE-ResNeXt-50 32×4d (Hu et al. 2018)"
