import pytest
from reference_weights import REFERENCE

from resnet import describe

PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}
PAPER_GMACS_V1 = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}
CIFAR_MMACS = {"resnet20": 40.55, "resnet56": 125.49, "resnet110": 252.89}


@pytest.mark.parametrize("name, params", PARAMETERS.items())
def test_parameter_counts_are_exact(name, params):
    assert describe(name)["params"] == params


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
