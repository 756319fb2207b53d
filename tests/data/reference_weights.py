"""A reproducible state_dict with torchvision's keys and shapes (tests/data/torchvision_reference.json)."""

import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent
REFERENCE = json.loads((DATA / "torchvision_reference.json").read_text())
MODELS = ("resnet18", "resnet50")


def reference_state_dict(name: str) -> dict[str, np.ndarray]:
    """Weights of He-init scale and non-trivial BN statistics, from numpy's PCG64 seeded by the name."""
    rng = np.random.default_rng(sum(map(ord, name)))
    state = {}
    for key, shape in REFERENCE[name]["state_dict"].items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(100, dtype=np.int64)
        elif key.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) > 1:
            fan_in = int(np.prod(shape[1:]))
            state[key] = (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)
        else:
            state[key] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return state


def reference_input() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
