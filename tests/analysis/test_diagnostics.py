import torch
import torch.nn.functional as F

from resnet import create_model
from resnet.analysis import conv_bn_pairs, gradient_norms, layer_responses


def test_responses_of_every_3x3_layer_after_bn():
    model = create_model("resnet20")
    x = torch.randn(16, 3, 32, 32)
    stds = layer_responses(model, x)
    assert len(stds) == 19  # the 3×3 stem and two 3×3 layers in each of 9 blocks
    assert stds[0].name == "bn1" and stds[1].name == "layer1.0.bn1" and stds[-1].name == "layer3.2.bn2"
    assert model.training  # left as it was
    model.eval()
    with torch.no_grad():
        stem = model.bn1(model.conv1(x))
    assert abs(stds[0].value - stem.std().item()) < 1e-5


def test_bottleneck_networks_measure_only_their_3x3_layers():
    pairs = conv_bn_pairs(create_model("resnet50"))
    assert len(pairs) == 16 and all(name.endswith("bn2") for name, _, _ in pairs)
    assert len(conv_bn_pairs(create_model("resnet50"), kernel_size=None)) == 49  # the stem and 3 per block


def test_gradient_norms_match_autograd_and_leave_the_model_alone():
    model = create_model("plain20")
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = gradient_norms(model, x, y)
    assert [n.name for n in norms][:2] == ["conv1", "layer1.0.conv1"] and norms[-1].name == "fc"
    assert len(norms) == 20
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    F.cross_entropy(model(x), y).backward()
    by_name = {n.name: n.value for n in norms}
    assert abs(by_name["layer2.0.conv2"] - model.layer2[0].conv2.weight.grad.norm().item()) < 1e-5


def test_gradients_at_initialization_spread_far_more_across_a_deep_plain_net():
    # At initialization, the gradient of a deep plain BN net varies by orders of magnitude from layer
    # to layer; the identity shortcuts of a ResNet keep it level.
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))

    def spread(name):
        convs = [n.value for n in gradient_norms(create_model(name), x, y) if n.name != "fc"]
        return max(convs) / min(convs)

    assert spread("plain110") > 1000 * spread("resnet110")
