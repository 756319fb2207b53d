"""Stochastic depth (Huang et al. 2016), `drop_path_rate` on every residual family: whole residual
branches dropped per sample in training, at rates linear over the blocks; evaluation unchanged."""

import pytest
import torch

from resnet import UsageError, create_model
from resnet.config import resolve
from resnet.models.blocks import DropPath, drop_path_rates
from resnet.models.preact import PreActBasicBlock

# One builder of each residual family, with its number of residual blocks.
BLOCKS = {
    "resnet20": 9,
    "resnet50": 16,
    "resnext29_8x64d": 9,
    "resnext50_32x4d": 16,
    "wide_resnet50_2": 16,
    "resnet18d": 8,
    "seresnet18": 8,
    "preact_resnet110": 54,
    "preact_resnet164": 54,
    "preact_resnet18": 8,
    "wrn16_4": 6,
    "residual_mlp": 4,
    "resnet9": 2,
}
RESIDUAL = list(BLOCKS)
# What the eval-mode check runs: one network of each block type, on small inputs.
SMALL = {
    "resnet20": (3, 16, 16),
    "resnet50": (3, 32, 32),
    "seresnet18": (3, 32, 32),
    "preact_resnet164": (3, 16, 16),
    "wrn16_4": (3, 16, 16),
    "residual_mlp": (64,),
    "resnet9": (3, 16, 16),
}


def _rates(model):
    return [m.p for m in model.modules() if isinstance(m, DropPath)]


@pytest.mark.parametrize("name", RESIDUAL)
def test_rates_grow_linearly_from_0_at_the_first_block_to_the_rate_at_the_last(name):
    with torch.device("meta"):
        model = create_model(name, drop_path_rate=0.2)
    n = BLOCKS[name]
    assert _rates(model) == pytest.approx([0.2 * i / (n - 1) for i in range(n)])
    assert _rates(model)[0] == 0 and _rates(model)[-1] == pytest.approx(0.2)


def test_the_rule():
    assert drop_path_rates(0.1, 5) == pytest.approx([0, 0.025, 0.05, 0.075, 0.1])
    assert drop_path_rates(0.3, 1) == [0.0]


@pytest.mark.parametrize("name, shape", SMALL.items())
def test_evaluation_is_the_network_without_stochastic_depth(name, shape):
    torch.manual_seed(0)
    plain = create_model(name).eval()
    torch.manual_seed(0)  # DropPath has no parameters: the same seed draws the same weights
    dropping = create_model(name, drop_path_rate=0.5).eval()
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.equal(dropping(x), plain(x)) and torch.equal(dropping(x), dropping(x))


def test_rate_0_and_evaluation_pass_the_branch_itself():
    x = torch.randn(8, 3, 4, 4)
    assert DropPath(0.0).train()(x) is x and DropPath(0.5).eval()(x) is x


def test_training_drops_whole_branches_per_sample_and_scales_the_kept():
    block = PreActBasicBlock(4, 4, drop_path=0.25).train()  # y = drop_path(F(x)) + x, nothing after the sum
    x = torch.randn(4000, 4, 3, 3)
    with torch.no_grad():
        out = block(x)
        block.drop_path.p = 0.0
        branch = block(x) - x  # F(x): training-mode BN normalizes by the batch's statistics, the same batch
    dropped = (out == x).flatten(1).all(1)
    assert dropped.float().mean().item() == pytest.approx(0.25, abs=0.03)  # binomial σ: 0.007
    assert torch.allclose((out - x)[~dropped], branch[~dropped] / 0.75, atol=1e-5)


def test_each_block_of_a_network_drops_at_its_rate():
    model = create_model("resnet20", drop_path_rate=0.5).train()
    seen = []
    for m in model.modules():
        if isinstance(m, DropPath):
            m.register_forward_hook(lambda m, inputs, out: seen.append((m.p, inputs[0], out)))
    with torch.no_grad():
        model(torch.randn(600, 3, 8, 8))
    for p, branch, out in seen:
        dropped = (out == 0).flatten(1).all(1)
        assert torch.allclose(out[~dropped], branch[~dropped] / (1 - p))  # kept whole, scaled
        assert dropped.float().mean().item() == pytest.approx(p, abs=0.1)  # binomial σ ≤ 0.02


def test_a_recipe_override_reaches_the_model():
    config = resolve("cifar-paper", ["model_options.drop_path_rate=0.1"])  # as `--set` gives it
    assert config.model_options == {"drop_path_rate": 0.1}
    assert _rates(create_model(config.model, **config.model_options))[-1] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name, rate, message",
    [
        ("plain20", 0.1, "drop_path_rate needs shortcuts"),
        ("plain_mlp", 0.1, "drop_path_rate needs shortcuts"),
        ("resnet20", 1.0, r"in \[0, 1\)"),
        ("densenet121", 0.1, "no option 'drop_path_rate'"),  # dense connections, no residual branch
    ],
)
def test_refusals(name, rate, message):
    with pytest.raises(UsageError, match=message):
        create_model(name, drop_path_rate=rate)
