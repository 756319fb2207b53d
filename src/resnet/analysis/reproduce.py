"""The paper's CIFAR-10 evidence, reproduced in one command: degradation of plain nets against
ResNets (Fig. 6, Table 6), layer responses (Fig. 7), gradient flow, the shortcut options (Table 3's
question at CIFAR scale), residual MLPs, the lesion study of Veit et al. 2016, the loss landscape
and sharpness (Li et al. 2018) and shattered gradients (Balduzzi et al. 2017). Each is a
protocol in experiments/, run by driver.py.

Every model trains in its own folder under OUT/runs/ (or `networks`, a folder several reproductions
share: a network trained with the same settings is trained once); a killed reproduction, run again,
skips the finished models and resumes the interrupted one from its checkpoint.
"""

from __future__ import annotations

from .driver import run_experiment, settings
from .experiments import EXPERIMENTS, Degradation, Gradients, Landscape, Lesion, MLPDepth, Shortcuts
from .report import Reproduction

# {experiment: {name: Preset}}: what --preset offers
PRESETS = {experiment.name: experiment.presets for experiment in EXPERIMENTS if experiment.presets}


def degradation(
    depths=None,
    data: str | None = None,
    out="reproductions/degradation",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: list[str] | dict | None = None,
    time_limit: str | float | None = None,
    networks: str | None = None,
    seeds: tuple[int, ...] | None = None,
    preset: str | None = None,
    add: tuple[int, ...] = (),
    at: int | str | None = None,
) -> Reproduction:
    """Plain nets against ResNets of each depth (default 20, 32, 44, 56): Fig. 6, Table 6, Fig. 7 and
    gradient flow; `add` puts further depths beside these (or the preset's). `overrides` ("key=value"
    strings or a mapping) change recipe keys of every model. With several `seeds` the ResNets
    train once per seed (the plain nets, whose finding has a wide margin, with the first), and the
    deeper ResNet counts as better only when all its seeds beat all the shallower one's. `preset`
    names a protocol of PRESETS. `networks`: the folder of the trained networks (default OUT/runs),
    which reproductions may share: a network there of the same settings is kept. `at`: report the runs
    as they stand at that iteration ("common": the last one every run has been evaluated at), training
    none: runs that have not finished, compared at matched iterations. Returns the paths of
    report.html and summary.md and the findings."""
    return run_experiment(Degradation, settings(locals()), preset=preset, depths=depths, seeds=seeds, add=add)


def shortcuts(
    depth: int | None = None,
    data: str | None = None,
    out="reproductions/shortcuts",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: list[str] | dict | None = None,
    time_limit: str | float | None = None,
    networks: str | None = None,
    preset: str | None = None,
    at: int | str | None = None,
) -> Reproduction:
    """Shortcut options A, B and C (and the plain net) at one CIFAR depth (default 32), in the spirit
    of Table 3. `preset` names a protocol of PRESETS; other arguments as `degradation`. Returns the
    paths of report.html and summary.md and the findings."""
    return run_experiment(Shortcuts, settings(locals()), preset=preset, depth=depth)


def mlp_depth(
    blocks=(1, 4, 8, 16),
    data: str | None = "digits",
    out="reproductions/mlp",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str = "",
    overrides: list[str] | dict | None = None,
    time_limit: str | float | None = None,
    networks: str | None = None,
    at: int | str | None = None,
) -> Reproduction:
    """Residual MLPs against plain ones of `blocks` dense blocks (3 layers each) on feature vectors
    (default: the embedded digits), trained with the mlp recipe: does the degradation of deep plain
    networks, and its cure by the residual connection, hold beyond convolutions? Other arguments as
    `degradation`. Returns the paths of report.html and summary.md and the findings."""
    return run_experiment(MLPDepth, settings({**locals(), "data": data or "digits", "recipe": "mlp"}), blocks=blocks)


def lesion(
    depth: int | None = None,
    data: str | None = None,
    out="reproductions/lesion",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: list[str] | dict | None = None,
    time_limit: str | float | None = None,
    networks: str | None = None,
    preset: str | None = None,
    draws: int | None = None,
    images: int | None = None,
    recalibrate: int = 0,
    weights: str | None = None,
    plain_weights: str | None = None,
) -> Reproduction:
    """The lesion study and path analysis of Veit et al. 2016 on ResNet-`depth` (default 56) against
    plain-`depth`: one block deleted at test time (its residual branch removed, its shortcut kept; a
    plain block replaced by the identity), `draws` random sets of blocks deleted and random swaps of
    blocks of equal shape (default 3 draws), and the gradient that the paths of each length carry.
    The networks are trained as `degradation` trains them, unless `weights` (the ResNet) or
    `plain_weights` name a checkpoint or another library's weights file. `images`: the test images
    evaluated (default all); `recalibrate`: training images on which each changed network's batch
    norms are re-estimated (default 0: the networks' own statistics). Returns the paths of
    report.html and summary.md and the findings."""
    sizes = dict(draws=draws, images=images, recalibrate=recalibrate, weights=weights, plain_weights=plain_weights)
    return run_experiment(Lesion, settings(locals()), preset=preset, depth=depth, **sizes)


def landscape(
    depth: int | None = None,
    steps: int | None = None,
    images: int | None = None,
    samples: int | None = None,
    weights: tuple[str, str] | None = None,
    shortcut: str | None = None,
    data: str | None = None,
    out="reproductions/landscape",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: list[str] | dict | None = None,
    time_limit: str | float | None = None,
    networks: str | None = None,
    preset: str | None = None,
) -> Reproduction:
    """Li et al. 2018's loss landscape of ResNet-`depth` (`shortcut` option, default B as Li et al.'s;
    the cpu preset: A) against plain-`depth` (default 56):
    the training loss at `steps` (odd) points along a filter-normalized random direction and `steps`²
    on a plane of two, on `images` training images drawn evenly from the classes, and the Hessian's top eigenvalue and
    trace (`samples` Hutchinson vectors). `weights`: two checkpoints of `resnet train` (the ResNet's,
    the plain net's) measured in place of training. Computed points are kept under OUT/landscape/, so
    the same call resumes. Other arguments as `degradation`. Returns the paths of report.html and summary.md
    and the findings."""
    return run_experiment(
        Landscape,
        settings(locals()),
        preset=preset,
        depth=depth,
        steps=steps,
        images=images,
        samples=samples,
        weights=weights,
        shortcut=shortcut,
    )


def shattered_gradients(
    depths=None,
    data: str | None = None,
    out="reproductions/gradients",
    quick: bool = False,
    iters: int | None = None,
    device: str | None = None,
    recipe: str = "cifar-paper",
    progress: bool = True,
    command: str = "",
    overrides: list[str] | dict | None = None,
    time_limit: str | float | None = None,
    networks: str | None = None,
    preset: str | None = None,
) -> Reproduction:
    """Balduzzi et al. 2017's shattered gradients: plain nets against ResNets of `depths` (default 20
    and 56), trained and freshly initialized, the derivative of a class score along a line of 256
    inputs between two training images and its autocorrelation. Other arguments as `degradation`.
    Returns the paths of report.html and summary.md and the findings."""
    return run_experiment(Gradients, settings(locals()), preset=preset, depths=depths)
