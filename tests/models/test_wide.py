import pytest
import torch

from resnet import UsageError, count_parameters, create_model
from resnet.models.preact import PreActBasicBlock

CIFAR = ("wrn16_4", "wrn16_8", "wrn28_10", "wrn40_4")


def wrn_parameters(depth: int, k: int, num_classes: int = 10) -> int:
    """Zagoruyko & Komodakis 2016, Table 1: a 3×3 stem of 16 filters; three groups of (d - 4) / 6
    blocks BN-ReLU-conv3×3-BN-ReLU-conv3×3 of 16k, 32k, 64k filters; a bias-free 1×1 projection
    where the width changes; the final BN and the classifier."""
    params, channels = 3 * 16 * 9, 16
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range((depth - 4) // 6):
            params += 2 * channels + channels * width * 9 + 2 * width + width * width * 9
            if channels != width:
                params += channels * width
            channels = width
    return params + 2 * channels + channels * num_classes + num_classes


# Table 4 of the paper: WRN-40-4 8.9M, WRN-16-8 11.0M, WRN-28-10 36.5M.
@pytest.mark.parametrize(
    "name, depth, k, paper_millions",
    [("wrn16_4", 16, 4, None), ("wrn16_8", 16, 8, 11.0), ("wrn28_10", 28, 10, 36.5), ("wrn40_4", 40, 4, 8.9)],
)
def test_cifar_sizes_and_depth(name, depth, k, paper_millions):
    with torch.device("meta"):
        model = create_model(name)
    assert count_parameters(model) == wrn_parameters(depth, k)
    if paper_millions is not None:
        assert round(count_parameters(model) / 1e6, 1) == paper_millions
    # the paper's depth counts the 3×3 convolutions and the three 1×1 projections
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == depth
    assert [s[0].conv1.out_channels for s in model.stages()] == [16 * k, 32 * k, 64 * k]
    assert model.conv1.out_channels == 16 and model.num_features == 64 * k


def test_dropout_sits_between_the_convolutions_and_only_trains():
    model = create_model("wrn16_4", dropout=0.3)
    blocks = [m for m in model.modules() if isinstance(m, PreActBasicBlock)]
    assert len(blocks) == 6 and all(b.dropout.p == 0.3 for b in blocks)
    block, calls = blocks[1], []
    for name in ("conv1", "norm2", "dropout", "conv2"):
        getattr(block, name).register_forward_hook(lambda m, i, o, name=name: calls.append((name, i[0], o)))
    with torch.no_grad():
        block.train()(torch.randn(8, 64, 8, 8))
    assert [name for name, _, _ in calls] == ["conv1", "norm2", "dropout", "conv2"]
    _, before, after = calls[2]
    dropped = ((after == 0) & (before != 0)).sum() / (before != 0).sum()
    assert dropped.item() == pytest.approx(0.3, abs=0.05)
    assert torch.allclose(after[after != 0], before[after != 0] / 0.7)  # kept activations scaled by 1/(1 - p)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(torch.ones(1, 3, 16, 16)), model(torch.ones(1, 3, 16, 16)))


def test_bad_dropout_is_a_usage_error():
    with pytest.raises(UsageError, match="wrn16_4: dropout probability"):
        create_model("wrn16_4", dropout=1.5)


def test_features_come_after_the_final_bn_relu():
    model = create_model("wrn16_4").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 256) and (features >= 0).all()
        model.reset_classifier(100)
        assert model(x).shape == (2, 100)
