"""timm's ResNet variants that torchvision lacks (ResNet-C/-D, SE-ResNet, SE-ResNeXt): their sizes,
state_dict keys and shapes, and outputs, against reference data made with timm (no timm needed)."""

import numpy as np
import pytest
import torch
from reference_weights import TIMM, timm_input, timm_outputs, timm_state_dict

from resnet import UsageError, create_model, describe

TIMM_MODELS = [name for name in TIMM if not name.startswith("_")]
OUTPUTS = ["resnet18d", "resnet50d", "seresnet50", "resnet50c"]  # those of timm_outputs.npz


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_sizes_and_state_dict_are_timms(name):
    row = describe(name)  # counted on the meta device: no memory, no compute
    assert (row["params"], row["macs"]) == (TIMM[name]["params"], TIMM[name]["macs"])
    with torch.device("meta"):
        model = create_model(name)
        state = {k: torch.empty(shape) for k, shape in TIMM[name]["state_dict"].items()}
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == TIMM[name]["state_dict"]
    model.load_state_dict(state, strict=True, assign=True)  # raises on a missing, unexpected or misshapen key


@pytest.mark.parametrize("name", OUTPUTS)
def test_timm_state_dict_loads_strictly_and_gives_timms_outputs(name):
    with torch.device("meta"):
        model = create_model(name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in timm_state_dict(name).items()}, strict=True, assign=True)
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(timm_input())).double().numpy()
    expected = timm_outputs(name)
    # float32 rounding (2^-24 relative an operation) through ~50 layers of sums of up to 4,608 products,
    # accumulated in an order set by the CPU's kernels: measured 3e-7 of the largest logit here, so 1e-5
    # leaves a 30-fold margin for other CPUs, while a network that differs (a missing ReLU in the stem,
    # the SE gate after the addition, a strided 1×1 in place of the average pool) is off by 1e-2 or more.
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_timm_checkpoint_loads_by_name(tmp_path):
    # timm's training checkpoints keep the weights under `state_dict`; the model's own keys: no renaming
    state = {k: torch.from_numpy(v) for k, v in timm_state_dict("resnet18d").items()}
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "resnet18d.pth.tar")
    model = create_model("resnet18d", weights=tmp_path / "resnet18d.pth.tar")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with pytest.raises(UsageError, match=r"deep 3-layer 3×3 stem .*stem='deep'"):
        create_model("resnet18", weights=tmp_path / "resnet18d.pth.tar")
