import pytest
import torch

from resnet import UsageError, create_model, list_models
from resnet.models import families, get_spec

PAPER_MODELS = [
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110, 1202)),
    *(f"plain{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110)),
]


def test_every_network_of_the_paper_is_registered():
    assert set(PAPER_MODELS) <= set(list_models())
    assert set(list_models("cifar")) | set(list_models("imagenet")) <= set(list_models())
    assert {"imagenet", "cifar"} <= set(families())


def test_default_classes_follow_the_family():
    assert create_model("resnet20").fc.out_features == 10
    assert create_model("resnet18").fc.out_features == 1000
    assert create_model("resnet20", num_classes=100).fc.out_features == 100


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(UsageError, match="unknown model 'xyzzy'; choose one of: resnet18, .*resnet20.*plain56"):
        create_model("xyzzy")


@pytest.mark.parametrize(
    "name, nearest",
    [
        ("ResNet50", "resnet50"),
        ("wide_resnet50", "wide_resnet50_2"),
        ("resnet200", "resnet20"),
        ("resnet21", "resnet20"),
    ],
)
def test_a_misspelt_model_gets_the_nearest_names_not_all(name, nearest):
    with pytest.raises(UsageError, match=rf"^unknown model '{name}'; did you mean [\w ]*\b{nearest}\b") as e:
        create_model(name)
    assert str(e.value).endswith("(`resnet models` lists them all)") and "plain56" not in str(e.value)


def test_unknown_option_lists_the_valid_options():
    with pytest.raises(UsageError, match="no option 'width'.*shortcut.*zero_init_residual"):
        create_model("resnet20", width=2)


def test_plain_networks_take_no_shortcut_option():
    assert "shortcut" not in get_spec("plain20").options
    with pytest.raises(UsageError, match="no option 'shortcut'"):
        create_model("plain20", shortcut="A")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"shortcut": "D"}, "choose one of A, B, C"),
        ({"variant": "v2"}, "choose one of v1, v1.5"),
        ({"shortcut": 1}, "takes a str"),
        ({"zero_init_residual": "yes"}, "takes a bool"),
        ({"num_classes": 0}, "positive"),
        ({"num_classes": 2.5}, "takes a int"),
    ],
)
def test_bad_option_values_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        create_model("resnet50", **options)


def test_zero_init_residual_is_refused_for_plain_networks():
    with pytest.raises(UsageError, match="needs shortcuts"):
        create_model("plain20", zero_init_residual=True)


def test_in_channels():
    model = create_model("resnet20", in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
