import pytest
import torch

from resnet import count_parameters, create_model, describe
from resnet.models.densenet import DenseBlock, Transition


# torchvision's documentation of the weights: parameters and GFLOPS (its "FLOPS" are multiply-adds).
@pytest.mark.parametrize("name, params, gmacs", [("densenet161", 28_681_000, 7.73), ("densenet201", 20_013_928, 4.29)])
def test_densenet161_and_201_have_torchvisions_documented_sizes(name, params, gmacs):
    row = describe(name)
    assert row["params"] == params and round(row["macs"] / 1e9, 2) == gmacs


def densenet_bc_parameters(depth: int, k: int, num_classes: int = 10) -> int:
    """Huang et al. 2017 §3-4: a 3×3 stem of 2k filters; three dense blocks of (L - 4) / 6 layers,
    each BN-ReLU-conv1×1 (4k) and BN-ReLU-conv3×3 (k) on the concatenation of all before it;
    transitions BN-ReLU-conv1×1 to floor(θm) channels, θ = 0.5; the final BN and the classifier."""
    params, channels = 3 * 2 * k * 9, 2 * k
    for block in range(3):
        for _ in range((depth - 4) // 6):
            params += 2 * channels + channels * 4 * k + 2 * 4 * k + 4 * k * k * 9
            channels += k
        if block < 2:
            params += 2 * channels + channels * (channels // 2)
            channels //= 2
    return params + 2 * channels + channels * num_classes + num_classes


# Table 2: DenseNet-BC (L=100, k=12) 0.8M, (L=250, k=24) 15.3M, (L=190, k=40) 25.6M.
@pytest.mark.parametrize(
    "name, depth, k, paper_millions",
    [
        ("densenet_bc100_k12", 100, 12, 0.8),
        ("densenet_bc250_k24", 250, 24, 15.3),
        ("densenet_bc190_k40", 190, 40, 25.6),
    ],
)
def test_cifar_densenet_bc_sizes(name, depth, k, paper_millions):
    with torch.device("meta"):
        params = count_parameters(create_model(name))
    assert params == densenet_bc_parameters(depth, k)
    assert round(params / 1e6, 1) == paper_millions


def test_dense_connectivity_and_compression():
    model = create_model("densenet_bc100_k12").eval()
    block, transition = model.features.denseblock1, model.features.transition1
    assert isinstance(block, DenseBlock) and isinstance(transition, Transition) and len(block) == 16
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        out = block(x)
        # every layer's input is the concatenation of all before it: the block's input passes unchanged
        assert out.shape == (2, 24 + 16 * 12, 8, 8) and torch.equal(out[:, :24], x)
        assert transition(out).shape == (2, (24 + 16 * 12) // 2, 4, 4)


def test_memory_efficient_gives_the_same_outputs_and_gradients():
    plain = create_model("densenet_bc100_k12")
    saving = create_model("densenet_bc100_k12", memory_efficient=True)
    saving.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    plain(x).square().sum().backward()
    saving(x).square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), saving.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    # the recomputation in the backward pass does not count twice in the BN running statistics
    for (name, p), q in zip(plain.named_buffers(), saving.buffers()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), name


def test_features_and_a_new_classifier():
    model = create_model("densenet_bc100_k12").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features) == (2, 342) and (features >= 0).all()
        assert torch.allclose(model.classifier(features), model(x))
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)
