"""ResNet-C and ResNet-D (He et al. 2019): the deep stem and average-pool shortcuts, as named models
and as options of the builders (their agreement with timm: test_timm_interop.py)."""

import pytest
import torch

from resnet import UsageError, create_model, describe
from resnet.models import get_spec, list_models
from resnet.models.blocks import make_shortcut


def _shapes(model):
    return {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "name, same_as",
    [
        ("resnet50d", ("resnet50", {"stem": "deep", "avg_down": True})),
        ("resnet50c", ("resnet50", {"stem": "deep"})),
        ("resnext50d_32x4d", ("resnext50_32x4d", {"stem": "deep", "avg_down": True})),
    ],
)
def test_the_named_models_are_the_options(name, same_as):
    with torch.device("meta"):
        named, built = create_model(name), create_model(same_as[0], **same_as[1])
    assert _shapes(named) == _shapes(built) and str(named) == str(built)
    assert {"stem", "avg_down"}.isdisjoint(get_spec(name).options)  # fixed by the name


def test_deep_stem_is_three_3x3_convolutions_before_the_max_pool():
    model = create_model("resnet18d")
    convs = [m for m in model.conv1 if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 32, (3, 3), (2, 2)),
        (32, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
    ]
    assert (model.maxpool.kernel_size, model.maxpool.stride) == (3, 2)
    x = torch.randn(1, 3, 64, 64)
    assert model.maxpool(model.relu(model.bn1(model.conv1(x)))).shape == (1, 64, 16, 16)  # /4, as the 7×7 stem


def test_average_pool_shortcut_covers_odd_sizes_like_timms():
    shortcut = make_shortcut("B", 2, 4, 2, avg_down=True)
    pool, conv = shortcut[0], shortcut[1]
    assert conv.stride == (1, 1)
    x = torch.arange(50.0).view(1, 2, 5, 5)
    y = pool(x)
    # ceil_mode: a 5×5 map gives 3×3 (its last row and column get windows of their own), which average
    # the inputs they hold (without padding, count_include_pad=False, timm's, changes nothing)
    assert y.shape == (1, 2, 3, 3)
    assert y[0, 0, 0, 0] == x[0, 0, :2, :2].mean() and y[0, 0, 2, 2] == x[0, 0, 4, 4]
    assert y[0, 1, 2, 0] == x[0, 1, 4, :2].mean()
    assert isinstance(make_shortcut("B", 64, 256, 1, avg_down=True)[0], torch.nn.Identity)  # no stride, no pool


@pytest.mark.parametrize("name, shortcut", [("resnet20", "B"), ("resnet20", "C"), ("resnext29_8x64d", "B")])
def test_cifar_networks_take_average_pool_shortcuts(name, shortcut):
    plain, pooled = describe(name, shortcut=shortcut), describe(name, shortcut=shortcut, avg_down=True)
    assert plain["params"] == pooled["params"]  # the pool has no parameters
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = create_model(name, shortcut=shortcut, avg_down=True)
        assert model(torch.empty(2, 3, 32, 32)).shape == (2, 10)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(pools) == 2  # one a stage that halves the resolution


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("resnet20", {"avg_down": True}, "option A has none"),
        ("resnet18", {"shortcut": "A", "avg_down": True}, "option A has none"),
        ("plain18", {"avg_down": True}, "avg_down needs shortcuts"),
        ("resnet20", {"stem": "deep"}, "no option 'stem'"),
        ("resnet18", {"stem": "cifar"}, "choose one of imagenet, deep"),
    ],
)
def test_refused_combinations_say_why(name, options, message):
    with pytest.raises(UsageError, match=message):
        create_model(name, **options)


def test_the_family_lists_the_models():
    assert list_models("tricks") == [
        "resnet18d",
        "resnet26d",
        "resnet34d",
        "resnet50d",
        "resnet101d",
        "resnet152d",
        "resnet50c",
        "resnext50d_32x4d",
    ]
    assert get_spec("resnet26d").depth == 26 and "ResNet-26-D" in get_spec("resnet26d").description
