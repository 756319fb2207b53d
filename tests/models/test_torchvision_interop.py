"""Every model torchvision also builds: its sizes, its state_dict keys and shapes, and its outputs."""

import numpy as np
import pytest
import torch
from reference_weights import (
    FAMILY_MODELS,
    MODELS,
    REFERENCE,
    reference_input,
    reference_state_dict,
    torchvision_outputs,
)

from resnet import create_model, describe

TORCHVISION = [name for name in REFERENCE if not name.startswith("_")]


@pytest.mark.parametrize("name", TORCHVISION)
def test_sizes_and_state_dict_are_torchvisions(name):
    row = describe(name)
    assert (row["params"], row["macs"]) == (REFERENCE[name]["params"], REFERENCE[name]["macs"])
    with torch.device("meta"):
        model = create_model(name)
        state = {k: torch.empty(shape) for k, shape in REFERENCE[name]["state_dict"].items()}
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == REFERENCE[name]["state_dict"]
    model.load_state_dict(state, strict=True, assign=True)  # raises on a missing, unexpected or misshapen key


@pytest.mark.parametrize("name", MODELS + FAMILY_MODELS)
def test_torchvision_state_dict_loads_strictly_and_gives_torchvisions_outputs(name):
    with torch.device("meta"):
        model = create_model(name)
    state = {k: torch.from_numpy(v) for k, v in reference_state_dict(name).items()}
    model.load_state_dict(state, strict=True, assign=True)
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(reference_input())).double().numpy()
    expected = torchvision_outputs(name)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
