import json

import pytest
import torch
from datasets import make_image_folder

from resnet import UsageError, checkpoint, create_model, describe, train
from resnet.models.resnet9 import ResidualPair


def resnet9_parameters(w: int = 64, num_classes: int = 10) -> int:
    """Page 2018: 3×3 convs without bias, each with a BN (2 parameters a channel): prep 3→w,
    layer1 w→2w and a residual pair of 2w, layer2 2w→4w, layer3 4w→8w and a residual pair of 8w;
    a bias-free classifier."""
    convs = [(3, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)] + [(8 * w, 8 * w)] * 2
    return sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in convs) + 8 * w * num_classes


@pytest.mark.parametrize("width", [64, 16])
def test_size_follows_the_architecture(width):
    model = create_model("resnet9", width=width)
    assert sum(p.numel() for p in model.parameters()) == resnet9_parameters(width)
    assert describe("resnet9")["params"] == resnet9_parameters() == 6_573_120  # the published 6.57M


def test_residual_pair_adds_its_input():
    pair = ResidualPair(8).eval()
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        assert torch.allclose(pair(x), x + pair.res2(pair.res1(x)))
        for layer in (pair.res1, pair.res2):
            layer.bn.weight.zero_()  # F(x) = relu(0 + bias) = 0: the pair is the identity
        assert torch.equal(pair(x), x)


def test_features_logits_and_a_new_classifier():
    model = create_model("resnet9", width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 64) and (features >= 0).all()
        assert torch.allclose(model(x), model.fc(features) * 0.125)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.fc.bias is None


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="resnet9: width must be ≥ 1"):
        create_model("resnet9", width=0)


def test_the_speedrun_recipe_trains_it(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class={"train": 16, "test": 2}, size=(16, 16))
    overrides = {"data.workers": 0, "batch_size": 16, "data.image_size": 16, "model_options": {"width": 8}}
    result = train(None, str(data), "speedrun", tmp_path / "run", overrides, epochs=2, progress=False)
    assert result.finished and result.steps == 6  # 48 images, batch 16, 2 epochs
    [row] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert row["step"] == 6 and 0 <= row["test_error"] <= 1  # log.evals 1: one evaluation, at the end
    state = checkpoint.load(tmp_path / "run" / "last.pt")
    assert state["model_name"] == "resnet9" and state["model_options"]["width"] == 8  # the recipe's network
    config = state["config"]  # and the recipe's training
    assert config["label_smoothing"] == 0.2 and config["optimizer"]["nesterov"]
    assert config["schedule"]["name"] == "onecycle" and config["log"]["evals"] == 1
