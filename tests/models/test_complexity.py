import pytest
import torch
from reference_weights import REFERENCE

from resnet import create_model, describe
from resnet.models.complexity import count_macs, count_parameters

PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
# He et al. 2015, Table 6: parameters of the CIFAR ResNets (option A), in millions.
PAPER_CIFAR_MILLIONS = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}
PAPER_GMACS_V1 = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}
CIFAR_MMACS = {"resnet20": 40.55, "resnet56": 125.49, "resnet110": 252.89}


@pytest.mark.parametrize("name, params", PARAMETERS.items())
def test_parameter_counts_are_exact(name, params):
    assert describe(name)["params"] == params


def cifar_resnet_parameters(depth: int, shortcut: str, num_classes: int = 10) -> int:
    """§4.2: a 3×3 stem of 16 filters, three stages of n = (depth - 2) / 6 basic blocks of 16, 32, 64
    filters (two 3×3 convs, each with BN), a 1×1 projection with BN on the shortcut (B: where the width
    grows, C: every block, A: none), and fc."""
    n = (depth - 2) // 6
    params, channels = 3 * 16 * 9 + 2 * 16, 16
    for width in (16, 32, 64):
        for _ in range(n):
            params += channels * width * 9 + 2 * width + width * width * 9 + 2 * width
            if shortcut == "C" or (shortcut == "B" and channels != width):
                params += channels * width + 2 * width
            channels = width
    return params + channels * num_classes + num_classes


@pytest.mark.parametrize("depth", PAPER_CIFAR_MILLIONS)
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_cifar_parameter_counts_follow_the_architecture(depth, shortcut):
    with torch.device("meta"):  # the count alone: describe() would also count ResNet-1202's multiply-adds
        model = create_model(f"resnet{depth}", shortcut=shortcut)
    assert count_parameters(model) == cifar_resnet_parameters(depth, shortcut)


@pytest.mark.parametrize("depth, millions", PAPER_CIFAR_MILLIONS.items())
def test_cifar_parameter_counts_are_the_papers(depth, millions):
    params = describe(f"resnet{depth}")["params"]
    assert round(params / 1e6, 2 if millions < 1 else 1) == millions


@pytest.mark.parametrize("name", PAPER_GMACS_V1)
def test_v15_multiply_adds_equal_torchvisions(name):
    assert describe(name)["macs"] == REFERENCE[name]["macs"]
    assert describe(name)["params"] == REFERENCE[name]["params"]


@pytest.mark.parametrize("name, gmacs", PAPER_GMACS_V1.items())
def test_v1_multiply_adds_within_3_percent_of_table_1(name, gmacs):
    assert describe(name, variant="v1")["macs"] / 1e9 == pytest.approx(gmacs, rel=0.03)


@pytest.mark.parametrize("name, mmacs", CIFAR_MMACS.items())
def test_cifar_multiply_adds(name, mmacs):
    assert round(describe(name)["macs"] / 1e6, 2) == mmacs


def test_option_b_adds_the_projections():
    a, b = describe("resnet20"), describe("resnet20", shortcut="B")
    # two 1×1 projections with BN: 16->32 and 32->64
    assert b["params"] - a["params"] == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert b["shortcut"] == "B"


def test_plain_networks_match_option_a_in_size():
    assert describe("plain56")["params"] == describe("resnet56")["params"]
    assert describe("plain56")["shortcut"] == "none"


def test_counting_leaves_a_real_network_as_it_was():
    """count_macs passes over batch norms and ReLUs while it counts; afterwards they compute again."""
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        assert count_macs(model, (3, 32, 32)) == describe("resnet20")["macs"]
        assert torch.equal(model(x), before)
    assert not any("forward" in vars(m) for m in model.modules())
