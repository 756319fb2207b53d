import json

import numpy as np
import pytest
import torch
from datasets import make_image_folder
from reference_weights import REFERENCE, reference_input, reference_state_dict, torchvision_outputs

from resnet import count_parameters, create_model, describe, train
from resnet.models.blocks import Bottleneck

TORCHVISION = ("resnext50_32x4d", "resnext101_32x8d")


@pytest.mark.parametrize("name", TORCHVISION)
def test_sizes_and_state_dict_are_torchvisions(name):
    row = describe(name)
    assert (row["params"], row["macs"]) == (REFERENCE[name]["params"], REFERENCE[name]["macs"])
    with torch.device("meta"):
        model = create_model(name)
        state = {k: torch.empty(shape) for k, shape in REFERENCE[name]["state_dict"].items()}
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == REFERENCE[name]["state_dict"]
    model.load_state_dict(state, strict=True, assign=True)  # raises on a missing, unexpected or misshapen key


def test_resnext101_64x4d_has_torchvisions_documented_size():
    # torchvision's documentation of ResNeXt101_64X4D_Weights: 83,455,272 parameters, 15.46 GFLOPS
    # (its "FLOPS" are multiply-adds).
    row = describe("resnext101_64x4d")
    assert row["params"] == 83_455_272 and round(row["macs"] / 1e9, 2) == 15.46


def test_torchvision_state_dict_loads_strictly_and_gives_torchvisions_outputs():
    with torch.device("meta"):
        model = create_model("resnext50_32x4d")
    state = {k: torch.from_numpy(v) for k, v in reference_state_dict("resnext50_32x4d").items()}
    model.load_state_dict(state, strict=True, assign=True)
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(reference_input())).double().numpy()
    expected = torchvision_outputs("resnext50_32x4d")
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def cifar_resnext_parameters(cardinality: int, width: int, num_classes: int = 10) -> int:
    """Xie et al. 2017 §5.3 and Fig. 3c: a 3×3 stem of 64 filters + BN; three stages of 3 blocks
    with 256, 512, 1024 outputs; each block 1×1 to C·d channels, grouped 3×3 (C groups of d), 1×1
    to the outputs, each conv followed by a BN; d doubles per stage; a 1×1 projection + BN where the
    channels change; the classifier."""
    params = 3 * 64 * 9 + 2 * 64
    channels = 64
    for stage, out in enumerate((256, 512, 1024)):
        inner = cardinality * width * 2**stage
        for _ in range(3):
            params += channels * inner + inner * (inner // cardinality) * 9 + inner * out + 2 * (2 * inner + out)
            if channels != out:
                params += channels * out + 2 * out
            channels = out
    return params + channels * num_classes + num_classes


# Table 7: 34.4M and 68.1M, the network without its classifier (68.155M with it would be 68.2M).
@pytest.mark.parametrize(
    "name, c, d, paper_millions", [("resnext29_8x64d", 8, 64, 34.4), ("resnext29_16x64d", 16, 64, 68.1)]
)
def test_cifar_resnext29_sizes(name, c, d, paper_millions):
    params = cifar_resnext_parameters(c, d)
    with torch.device("meta"):
        model = create_model(name)
    assert count_parameters(model) == params
    assert round((params - count_parameters(model.fc)) / 1e6, 1) == paper_millions
    first = model.layer1[0]
    assert isinstance(first, Bottleneck) and first.conv2.groups == c and first.conv2.out_channels == c * d
    assert model.conv1.kernel_size == (3, 3) and model.fc.in_features == 1024
    assert [len(s) for s in model.stages()] == [3, 3, 3]  # 29 = 9 × 3 + 2 layers


def test_channels_last_and_bf16_autocast_agree_with_float32():
    model = create_model("resnext29_8x64d").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
        last = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        assert model.forward_features(x).shape == (2, model.num_features) == (2, 1024)
    assert (last - reference).norm() / reference.norm() < 1e-4
    assert half.dtype == torch.bfloat16 and (half.float() - reference).norm() / reference.norm() < 0.05


def test_trains(tmp_path):
    # 8×8 images, two test images a class: every step of a run, in seconds on a CPU.
    data = make_image_folder(tmp_path / "data", per_class={"train": 16, "test": 2}, size=(8, 8))
    overrides = {"data.workers": 0, "log.evals": 1, "batch_size": 16, "data.image_size": 8}
    result = train("resnext29_8x64d", str(data), "cifar-paper", tmp_path / "run", overrides, iters=2, progress=False)
    assert result.finished and result.steps == 2
    [row] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert row["step"] == 2 and 0 <= row["test_error"] <= 1
    for checkpoint in ("last.pt", "best.pt"):  # 34M parameters and their momentum: 0.26 GB each, not kept
        (tmp_path / "run" / checkpoint).unlink()
