"""Training: the loop, recipes' schedules, checkpoints, evaluation. `resnet.train` and `resnet.finetune`
are the Python API (train.api); this package imports nothing until a name is read (resnet.lazy)."""

from ..lazy import exports

__getattr__ = exports(__name__, {"RunResult": ".logs", "train": ".api"})

__all__ = ["RunResult", "train"]
