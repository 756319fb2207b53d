import json

import pytest
import torch
from datasets import make_image_folder
from reference_weights import REFERENCE

from resnet import UsageError, count_parameters, create_model, describe, load, train
from resnet.data.images import decode_image
from resnet.models.preact import PreActBasicBlock, PreActBottleneck, PreActResNet

CIFAR = {
    "preact_resnet110": ("basic", 18),
    "preact_resnet164": ("bottleneck", 18),
    "preact_resnet1001": ("bottleneck", 111),
}
IMAGENET = ("preact_resnet18", "preact_resnet34", "preact_resnet50", "preact_resnet101", "preact_resnet152")


def cifar_preact_parameters(block: str, n: int, num_classes: int = 10) -> tuple[int, int]:
    """(all parameters, convolution weights) from He et al. 2016's description: a 3×3 stem of 16
    filters; three stages of n blocks of 16/32/64 planes (×4 outputs for bottlenecks), each conv
    preceded by a BN (2 parameters a channel); a bias-free 1×1 projection where the channels change;
    a final BN and the classifier."""
    convs, bns = 3 * 16 * 9, 0
    channels = 16
    for planes in (16, 32, 64):
        out = planes * (4 if block == "bottleneck" else 1)
        for _ in range(n):
            if block == "basic":
                convs += channels * planes * 9 + planes * planes * 9
                bns += 2 * channels + 2 * planes
            else:
                convs += channels * planes + planes * planes * 9 + planes * out
                bns += 2 * channels + 4 * planes
            if channels != out:  # here every change of shape changes the channels
                convs += channels * out
            channels = out
    return convs + bns + 2 * channels + channels * num_classes + num_classes, convs


# The paper's sizes: 1.7M (ResNet-110 and -164), 10.2M (ResNet-1001). They are the convolutions'
# weights: ResNet-1001 has 10.18M of them, 10.33M parameters with BN and the classifier.
@pytest.mark.parametrize(
    "name, paper_millions", [("preact_resnet110", 1.7), ("preact_resnet164", 1.7), ("preact_resnet1001", 10.2)]
)
def test_cifar_parameter_counts_follow_the_architecture(name, paper_millions):
    params, conv_weights = cifar_preact_parameters(*CIFAR[name])
    with torch.device("meta"):
        assert count_parameters(create_model(name)) == params
    assert round(conv_weights / 1e6, 1) == paper_millions


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_sizes_are_torchvisions_resnet_less_the_projection_bns(name):
    # Pre-activation moves each BN in front of its convolution: the stem's becomes the first block's,
    # each block's output BN the next block's input BN, the last one the final BN. Only the BNs of
    # the projection shortcuts go (projections of a pre-activated input are not normalized).
    reference = REFERENCE[name.removeprefix("preact_")]
    # projections: the first block of stages 2-4 (basic blocks), of every stage (bottlenecks: 64 -> 256)
    projected = (128, 256, 512) if name in ("preact_resnet18", "preact_resnet34") else (256, 512, 1024, 2048)
    projection_bns = 2 * sum(projected)
    row = describe(name)
    assert row["params"] == reference["params"] - projection_bns
    assert row["macs"] == reference["macs"]  # the same convolutions (v1.5); BN costs no multiply-adds


@pytest.mark.parametrize(
    "name, depth", [("preact_resnet110", 110), ("preact_resnet164", 164), ("preact_resnet1001", 1001)]
)
def test_cifar_depth_counts_the_weighted_layers_of_the_residual_branches(name, depth):
    with torch.device("meta"):
        model = create_model(name)
    projections = {id(m.downsample) for m in model.modules() if isinstance(m, (PreActBasicBlock, PreActBottleneck))}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and id(m) not in projections]
    assert len(convs) + 1 == depth  # the stem, the blocks' convolutions and fc
    widths = [16, 32, 64] if depth == 110 else [64, 128, 256]  # block inputs: basic ×1, bottleneck ×4
    assert [s[-1].conv1.in_channels for s in model.stages()] == widths


def test_identity_blocks_pass_the_signal_through_unchanged():
    # Fig. 4e: nothing after the addition, so a residual branch of zero makes the block the identity
    # (negative inputs included: the original block's final ReLU would clip them).
    model = create_model("preact_resnet110").eval()
    block = model.layer2[3]
    assert block.downsample is None
    torch.nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), x)


def test_projections_take_the_preactivated_input_without_bn():
    model = create_model("preact_resnet164").eval()
    block = model.layer2[0]
    assert isinstance(block.downsample, torch.nn.Conv2d) and block.downsample.stride == (2, 2)
    torch.nn.init.zeros_(block.conv3.weight)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        expected = block.downsample(torch.relu(block.norm1(x)))
        assert torch.allclose(block(x), expected)


def test_features_come_after_the_final_bn_relu():
    model = create_model("preact_resnet110").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features) == (2, 64)
        assert (features >= 0).all() and features.sum() > 0
        assert torch.allclose(model.fc(features), model(x))
        model.reset_classifier(5)
        assert model(x).shape == (2, 5) and model.fc.in_features == 64


@pytest.mark.parametrize(
    "name, options, strided",
    [
        ("preact_resnet164", {}, "conv1"),  # the authors' CIFAR code strides the first 1×1
        ("preact_resnet50", {}, "conv2"),  # fb.resnet.torch (v1.5) strides the 3×3
        ("preact_resnet50", {"variant": "v1"}, "conv1"),
    ],
)
def test_where_bottlenecks_stride(name, options, strided):
    with torch.device("meta"):
        block = create_model(name, **options).layer2[0]
    assert [c for c in ("conv1", "conv2") if getattr(block, c).stride == (2, 2)] == [strided]


def test_shortcut_c_projects_every_block():
    # the extra 1×1 projections of the 16+17+17 identity blocks of 16, 32 and 64 channels
    b, c = describe("preact_resnet110"), describe("preact_resnet110", shortcut="C")
    assert c["params"] - b["params"] == 18 * 16 * 16 + 17 * 32 * 32 + 17 * 64 * 64
    assert (b["shortcut"], c["shortcut"]) == ("B", "C")


@pytest.mark.parametrize(
    "options, message", [({"shortcut": "A"}, "choose one of B, C"), ({"variant": "v2"}, "v1, v1.5")]
)
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        create_model("preact_resnet50", **options)


def test_trains_evaluates_and_predicts(tmp_path):
    # 8×8 images, two test images a class: every step of a run, in seconds on a CPU.
    data = make_image_folder(tmp_path / "data", per_class={"train": 16, "test": 2}, size=(8, 8))
    overrides = {"data.workers": 0, "log.evals": 1, "batch_size": 16, "data.image_size": 8}
    result = train("preact_resnet110", str(data), "cifar-paper", tmp_path / "run", overrides, iters=2, progress=False)
    assert result.finished and result.steps == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2] and 0 <= rows[0]["test_error"] <= 1
    classifier = load(tmp_path / "run" / "best.pt")
    assert isinstance(classifier.model, PreActResNet)
    image = data / "test" / "red" / "000.png"
    [top] = classifier.predict([image], topk=2)
    with torch.no_grad():  # the trained network's own ranking of the three classes
        probs = classifier.model(classifier.preprocess([decode_image(image)])).softmax(1)[0]
    best = probs.argsort(descending=True)[:2].tolist()
    assert [label for label, _ in top] == [classifier.classes[i] for i in best]
    assert [p for _, p in top] == pytest.approx(probs[best].tolist(), abs=1e-5)
