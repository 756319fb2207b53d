import re

import pytest
import torch
import torch.nn.functional as F

from resnet import create_model, list_models
from resnet.models.blocks import BasicBlock, Bottleneck, ZeroPadShortcut


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]


@pytest.mark.parametrize(
    "name, options, projections, paddings",
    [
        ("resnet20", {}, 0, 2),
        ("resnet20", {"shortcut": "B"}, 2, 0),
        ("resnet20", {"shortcut": "C"}, 9, 0),
        ("resnet18", {}, 3, 0),
        ("resnet50", {}, 4, 0),  # layer1's first block grows 64 -> 256 channels
        ("resnet50", {"shortcut": "A"}, 0, 4),
        ("resnet34", {"shortcut": "C"}, 16, 0),
    ],
)
def test_shortcut_option_places_projections_and_paddings(name, options, projections, paddings):
    shortcuts = [type(b.downsample) for b in _blocks(create_model(name, **options))]
    assert shortcuts.count(torch.nn.Sequential) == projections
    assert shortcuts.count(ZeroPadShortcut) == paddings


@pytest.mark.parametrize("name", [n for n in list_models() if re.fullmatch(r"plain\d+", n)])
def test_plain_networks_have_the_same_layers_and_no_shortcuts(name):
    plain = create_model(name, num_classes=10)
    residual = create_model(name.replace("plain", "resnet"), num_classes=10, shortcut="A")
    assert all(b.plain and b.downsample is None for b in _blocks(plain))
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in residual.state_dict().items()}


def test_shortcuts_change_the_function():
    residual, plain = create_model("resnet20"), create_model("plain20")
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(residual.eval()(x), plain.eval()(x))


@pytest.mark.parametrize("name, depth", [("resnet20", 20), ("resnet56", 56), ("resnet110", 110), ("resnet1202", 1202)])
def test_cifar_networks_have_6n_plus_2_layers(name, depth):
    model = create_model(name)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == depth  # weighted layers: the convolutions and fc
    assert [s[0].conv1.out_channels for s in model.stages()] == [16, 32, 64]
    assert [s[0].conv1.stride[0] for s in model.stages()] == [1, 2, 2]
    assert model.fc.in_features == 64


def test_imagenet_stem_and_stages():
    model = create_model("resnet50")
    assert (model.conv1.kernel_size, model.conv1.stride) == ((7, 7), (2, 2))
    assert (model.maxpool.kernel_size, model.maxpool.stride) == (3, 2)
    assert [s[-1].conv3.out_channels for s in model.stages()] == [256, 512, 1024, 2048]
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_he_initialization():
    model = create_model("resnet56")
    conv = model.layer3[0].conv2
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    bn = model.layer2[1].bn1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and not bn.bias.any()


@pytest.mark.parametrize("name", ["resnet20", "resnet50"])
def test_zero_init_residual_starts_every_identity_block_as_identity(name):
    model = create_model(name, zero_init_residual=True).eval()
    blocks = [b for b in _blocks(model) if b.downsample is None]
    assert blocks
    for block in blocks:
        assert not block.last_bn.weight.any()
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        assert torch.equal(block(x), F.relu(x))


def test_compiles_with_fullgraph():
    model = create_model("resnet20").eval()
    # one graph, no breaks: TorchDynamo's capture and AOTAutograd's; inductor's C++ code generation (PyTorch's
    # own, and half a minute of compiling) is left out
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


def test_features_and_a_new_classifier():
    model = create_model("resnet20")
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, model.num_features) == (2, 64)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.fc.in_features == 64
