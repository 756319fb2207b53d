import pytest
import torch

from resnet import create_model, describe, train
from resnet.models.mlp import DenseBlock


def test_the_seeds_block():
    block = DenseBlock(1024, (1024, 512)).eval()
    assert [m.out_features for m in (block.fc1, block.fc2, block.fc3)] == [1024, 512, 1024]
    torch.nn.init.zeros_(block.fc3.weight)
    torch.nn.init.zeros_(block.fc3.bias)
    x = torch.randn(4, 1024)
    assert torch.equal(block(x), torch.relu(x))  # the residual block starts from the identity
    plain = DenseBlock(1024, (1024, 512), residual=False).eval()
    plain.load_state_dict(block.state_dict())
    assert not plain(x).any()


def test_sizes():
    # stem 64→1024, each block 1024→1024→512→1024, classifier 1024→10
    block = (1024 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 1024 + 1024)
    for blocks in (0, 1, 4):
        expected = (64 * 1024 + 1024) + blocks * block + (1024 * 10 + 10)
        assert (
            describe("residual_mlp", blocks=blocks)["params"]
            == expected
            == describe("plain_mlp", blocks=blocks)["params"]
        )
    assert describe("residual_mlp")["input_shape"] == [64]
    assert create_model("plain_mlp", in_features=5, num_classes=3)(torch.randn(2, 5)).shape == (2, 3)


def test_trains_on_the_digits_and_on_images(tmp_path):
    fast = {"batch_size": 32, "log.evals": 1, "data.workers": 0, "model_options": {"blocks": 1}}
    result = train("residual_mlp", "digits", "mlp", tmp_path / "digits", fast, iters=40, progress=False)
    assert result.test_error < 0.5  # chance: 0.9
    result = train("plain_mlp", None, "mlp", tmp_path / "cifar", fast, iters=2, progress=False)  # 3×32×32, flattened
    assert result.steps == 2


@pytest.mark.parametrize("blocks", [1, 16])
def test_described_layers_are_the_dense_layers_built(blocks):
    model = create_model("residual_mlp", blocks=blocks)
    dense = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert describe("residual_mlp", blocks=blocks)["layers"] == dense == 2 + 3 * blocks
