"""Named protocols of the experiments: their length, sizes and recipe changes, as data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """A named protocol of an experiment: its length, its sizes (keyword arguments of the experiment,
    e.g. depths) and recipe changes. What a caller passes as well takes precedence."""

    description: str
    iters: int | None = None
    sizes: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)


# --quick: a few minutes on a CPU, on the embedded subset (the experiments add their quick sizes)
QUICK = Preset(
    "200 iterations on the embedded subset", iters=200, overrides={"log.evals": 10, "log.diagnostics_batch": 32}
)

# `cpu`: the paper's three CIFAR findings in at most two hours on a 2-core CPU with native bf16 (the
# trials behind these choices are in docs/reproductions.md).
CPU_SCHEDULE = {"schedule.name": "cosine", "schedule.warmup": 0.05, "log.evals": 16}
# the networks of the lesion and gradients cpu presets: 1,000 iterations of cifar-paper with the cosine
# schedule, seed 1; the same settings, so that given one --networks folder they train ResNet-56 and plain-56 once
SHORT_ITERS, SHORT_SCHEDULE = 1000, {**CPU_SCHEDULE, "seed": 1}
