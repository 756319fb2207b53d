"""Regenerate torchvision_outputs.npz: torchvision's own outputs for a reproducible state_dict.

Run once in an environment that has torchvision (not needed by the test suite):
    python tests/data/make_torchvision_outputs.py
The weights come from `reference_state_dict` (numpy's PCG64, stable across versions), so the
test rebuilds the same state_dict without torchvision and compares our outputs with these.
"""

from pathlib import Path

import numpy as np
import torch
import torchvision
from reference_weights import MODELS, reference_input, reference_state_dict

HERE = Path(__file__).parent

outputs = {}
for name in MODELS:
    model = getattr(torchvision.models, name)()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in reference_state_dict(name).items()}, strict=True)
    with torch.no_grad():
        outputs[name] = model.eval()(torch.from_numpy(reference_input())).double().numpy()
np.savez_compressed(HERE / "torchvision_outputs.npz", torchvision=torchvision.__version__, **outputs)
print({k: v.shape for k, v in outputs.items()}, torchvision.__version__)
