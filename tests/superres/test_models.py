import pytest
import torch

from resnet import UsageError, create_model, describe, list_models
from resnet.models.superres import EDSR, VDSR
from resnet.superres.data import to_tensor, upscale_bicubic


def test_registered_in_the_superres_family():
    assert list_models("superres") == ["vdsr", "edsr_baseline"]
    vdsr, edsr = describe("vdsr"), describe("edsr_baseline")
    assert vdsr["layers"] == 20 and vdsr["num_classes"] is None and vdsr["input_shape"] == [3, 32, 32]
    # 3×3 convs: 3→64, 18 × 64→64, 64→3, each with a bias.
    assert vdsr["params"] == (27 * 64 + 64) + 18 * (576 * 64 + 64) + (576 * 3 + 3)
    # Every conv runs once over the 32×32 output: weights × positions.
    assert vdsr["macs"] == (27 * 64 + 18 * 576 * 64 + 576 * 3) * 32 * 32
    conv = 576 * 64 + 64
    # head, 16 blocks of two convs, body conv, one ×2 upsampling conv (64→256), tail (64→3)
    assert edsr["params"] == (27 * 64 + 64) + 33 * conv + (576 * 256 + 256) + (576 * 3 + 3)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("global_residual", [True, False])
def test_output_shapes(scale, global_residual):
    lr = torch.rand(2, 3, 10, 12)
    edsr = create_model("edsr_baseline", scale=scale, global_residual=global_residual, num_blocks=2, width=16)
    assert edsr(lr).shape == (2, 3, 10 * scale, 12 * scale)
    vdsr = create_model("vdsr", scale=scale, global_residual=global_residual, num_layers=5, width=16)
    assert vdsr(torch.rand(2, 3, 10 * scale, 12 * scale)).shape == (2, 3, 10 * scale, 12 * scale)


def test_scale_changes_no_vdsr_weight():
    shapes = {s: {k: v.shape for k, v in create_model("vdsr", scale=s).state_dict().items()} for s in (2, 4)}
    assert shapes[2] == shapes[4]
    edsr = {s: len(create_model("edsr_baseline", scale=s).state_dict()) for s in (2, 4)}
    assert edsr[4] == edsr[2] + 2  # one more upsampling conv: weight and bias


def test_vdsr_global_residual_means_bicubic_plus_a_residual():
    lr = upscale_bicubic((torch.rand(12, 14, 3) * 255).byte().numpy(), 2)
    x = to_tensor([lr])
    for global_residual, expected in ((True, x), (False, torch.zeros_like(x))):
        model = create_model("vdsr", global_residual=global_residual, num_layers=6, width=8)
        assert isinstance(model, VDSR) and model.input_is_upscaled
        with torch.no_grad():
            assert not torch.equal(model(x), expected)
            model.last.weight.zero_()
            model.last.bias.zero_()
            assert torch.equal(model(x), expected)  # no residual: exactly the bicubic input, or nothing


def test_edsr_long_skip_carries_the_head_features():
    x = torch.rand(2, 3, 8, 8)
    for global_residual in (True, False):
        model = create_model("edsr_baseline", global_residual=global_residual, num_blocks=2, width=8)
        assert isinstance(model, EDSR) and not model.input_is_upscaled
        with torch.no_grad():
            model.body[-1].weight.zero_()
            model.body[-1].bias.zero_()
            out = model(x)
            # A silent body: with the long skip the head's features still reach the tail; without it,
            # the tail sees zeros and gives the same constant image whatever the input.
            assert torch.equal(out[0], out[1]) is not global_residual
            expected = model.tail(model.upsample(model.head(x) if global_residual else torch.zeros(2, 8, 8, 8)))
            assert torch.equal(out, expected)


@pytest.mark.parametrize("name", ["vdsr", "edsr_baseline"])
def test_bad_options(name):
    with pytest.raises(UsageError, match="invalid scale 3; choose one of 2, 4"):
        create_model(name, scale=3)
    with pytest.raises(UsageError, match="not a classifier"):
        create_model(name, num_classes=10)
    with pytest.raises(UsageError, match="global_residual takes a bool"):
        create_model(name, global_residual="yes")
