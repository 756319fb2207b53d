import pytest
import torch

from resnet import count_parameters, create_model, describe
from resnet.models.blocks import Bottleneck


def test_resnext101_64x4d_has_torchvisions_documented_size():
    # torchvision's documentation of ResNeXt101_64X4D_Weights: 83,455,272 parameters, 15.46 GFLOPS
    # (its "FLOPS" are multiply-adds).
    row = describe("resnext101_64x4d")
    assert row["params"] == 83_455_272 and round(row["macs"] / 1e9, 2) == 15.46


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
