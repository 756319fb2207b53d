import pytest
import torch
import torch.nn.functional as F

from resnet import create_model
from resnet.models.blocks import BasicBlock, Bottleneck, GlobalPool, ZeroPadShortcut, make_shortcut


def test_option_a_subsamples_and_pads_zero_channels_on_each_side():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 4)
    # planes // 4 = 8 zero channels on each side, the identity in the middle.
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()


def test_option_a_has_no_parameters():
    assert not list(ZeroPadShortcut(16, 32, 2).parameters())


@pytest.mark.parametrize(
    "option, stride, in_planes, out_planes, expected",
    [
        ("A", 1, 16, 16, "NoneType"),  # None: the identity, as in torchvision
        ("A", 2, 16, 32, "ZeroPadShortcut"),
        ("B", 1, 16, 16, "NoneType"),
        ("B", 2, 16, 32, "Sequential"),
        ("B", 1, 64, 256, "Sequential"),
        ("C", 1, 16, 16, "Sequential"),
    ],
)
def test_shortcut_options(option, stride, in_planes, out_planes, expected):
    assert type(make_shortcut(option, in_planes, out_planes, stride)).__name__ == expected


def test_unknown_shortcut_option_names_the_choices():
    with pytest.raises(ValueError, match="A, B, C"):
        make_shortcut("D", 16, 16, 1)


def test_basic_block_computes_relu_of_residual_plus_identity():
    block = BasicBlock(8, 8, downsample=make_shortcut("B", 8, 8, 1)).eval()
    x = torch.randn(2, 8, 6, 6)
    residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    assert torch.allclose(block(x), F.relu(residual + x), atol=1e-6)


def test_plain_block_has_no_shortcut():
    block = BasicBlock(8, 8, plain=True).eval()
    x = torch.randn(2, 8, 6, 6)
    residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    assert torch.allclose(block(x), F.relu(residual), atol=1e-6)


def test_a_plain_block_refuses_a_shortcut():
    with pytest.raises(ValueError, match="plain"):
        Bottleneck(64, 16, stride=2, downsample=make_shortcut("B", 64, 64, 2), plain=True)


@pytest.mark.parametrize("stride_in_1x1, strides", [(True, (2, 1)), (False, (1, 2))])
def test_bottleneck_stride_placement(stride_in_1x1, strides):
    block = Bottleneck(64, 16, stride=2, downsample=make_shortcut("B", 64, 64, 2), stride_in_1x1=stride_in_1x1)
    assert (block.conv1.stride[0], block.conv2.stride[0]) == strides
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 64, 4, 4)


@pytest.mark.parametrize("max", [False, True])
def test_global_pool_is_the_adaptive_pool_in_value_and_gradient(max):
    x = torch.randn(3, 5, 7, 6, requires_grad=True)
    adaptive = (torch.nn.AdaptiveMaxPool2d(1) if max else torch.nn.AdaptiveAvgPool2d(1))(x)
    ours = GlobalPool(max=max)(x)
    weights = torch.randn_like(ours)
    (expected,) = torch.autograd.grad((adaptive * weights).sum(), x)
    (got,) = torch.autograd.grad((ours * weights).sum(), x)
    assert torch.allclose(ours, adaptive) and torch.allclose(got, expected)


def test_no_model_pools_with_an_adaptive_pool():
    # their CUDA backward is nondeterministic: deterministic=true would fail at the first backward
    adaptive = (torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)
    for name in ("resnet20", "resnet50", "preact_resnet18", "resnet9"):
        assert not [m for m in create_model(name).modules() if isinstance(m, adaptive)], name
