"""The command line: a thin shell over the Python API. `resnet --help` lists the commands.

Each command is two functions: `add_<command>` declares its options, `_<command>` calls the Python API
with them. Options reach the library in one way: as keyword arguments of the API function, under its
parameter names; --set goes to its `overrides` as given (config.parse_overrides reads it). The one
exception is an option that is a recipe key the API takes no argument for (train's --download, and
--skip-bad-images of train and finetune: RECIPE_FLAGS): it joins the overrides, refused like the keyword arguments when
--set gives the key another value (config.set_once).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from . import __version__
from .config import CHOICES, parse_overrides, recipe_names, set_once
from .errors import RunError, Stopped, UsageError


class _Formatter(argparse.HelpFormatter):
    """Help that ends with the option's default, unless it says it already or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or default == []
            or not action.option_strings
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not the whole usage text; help shows
    every default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- option types and the options several commands share ---------------------------------------------

SET_HELP = "override a recipe key, e.g. --set optimizer.lr=0.05 (repeatable; `resnet recipes` lists the keys)"
DEVICE_HELP = "auto (a GPU if there is one, else the CPU), cpu, cuda or cuda:N"
# train's options that are recipe keys resnet.train takes no argument for: they join the overrides
RECIPE_FLAGS = {"download": "data.download", "skip_bad_images": "data.skip_bad_images"}


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _depth(text: str) -> int:
    """A CIFAR network's depth, checked by the rule the models use (6n+2)."""
    from .models.base import blocks_per_stage

    value = int(text)
    try:
        blocks_per_stage(value, layers_per_block=2, extra=2, networks="CIFAR networks")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _set_option(p: argparse.ArgumentParser, help: str = SET_HELP) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)


def _device_option(p: argparse.ArgumentParser, recipe: bool = False) -> None:
    """--device, whose default is auto for every command (for training ones: the recipe's `device`, auto)."""
    if recipe:
        p.add_argument("--device", help=f"{DEVICE_HELP} (default: the recipe's device key, auto)")
    else:
        p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _time_limit_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--time-limit",
        metavar="DURATION",
        help="stop with a checkpoint before this much time has passed (e.g. 90m, 2h30m), exit code 75; "
        "SIGTERM, SIGINT and SIGUSR1 stop after the current step, exit code 128 + the signal",
    )


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _recipe_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--recipe", default=default, help=f"{', '.join(recipe_names())}, or a YAML file (`resnet recipes` shows them)"
    )


def _length_options(p: argparse.ArgumentParser) -> None:
    """--epochs or --iters: the length of a training run (default: the recipe's)."""
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_float, help="length of the run in epochs (default: the recipe's)")
    length.add_argument("--iters", type=_positive_int, help="length of the run in iterations (default: the recipe's)")


def _run_options(p: argparse.ArgumentParser, out: str, set_help: str = SET_HELP) -> None:
    """The options every training command (train, finetune, superres train) gives its run folder."""
    p.add_argument("--out", type=Path, help=f"run folder (default: {out})")
    _set_option(p, set_help)
    _device_option(p, recipe=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace a run already in --out")


def _weights_option(p: argparse.ArgumentParser) -> None:
    from .models.weights import SHIPPED_TAGS

    p.add_argument(
        "--weights",
        type=str.lower,
        choices=SHIPPED_TAGS,
        help="the weights this package ships for --model (see resnet models), instead of a checkpoint",
    )


def _shipped(args: argparse.Namespace, paths: list[str]) -> Path | None:
    """The package's file of --model's --weights, or None without --weights."""
    if args.weights is None:
        return None
    if args.model is None:
        raise UsageError(f"--weights {args.weights}: name the network with --model (e.g. --model resnet20)")
    if paths and Path(paths[0]).suffix in (".pt", ".safetensors", ".pth"):
        raise UsageError(f"--weights {args.weights} replaces a checkpoint: drop {paths[0]}")
    from .models.weights import weights_path

    return weights_path(args.model, args.weights)


def _checkpoint(args: argparse.Namespace, verb: str) -> tuple[str | Path, bool]:
    """What a command of one CHECKPOINT reads: the package's file of --model's --weights, else the
    checkpoint given; and whether it is the shipped file (whose outputs must not go beside it)."""
    shipped = _shipped(args, [args.checkpoint] if args.checkpoint else [])
    if shipped:
        return shipped, True
    if args.checkpoint is None:
        raise UsageError(f"name a checkpoint to {verb}, or --model NAME --weights cifar10")
    return args.checkpoint, False


def _engine_option(p: argparse.ArgumentParser) -> None:
    from .optimize import ENGINES, PRECISIONS

    p.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="what computes the outputs (default auto: OpenVINO on a CPU when installed, else torch; every "
        "engine is checked against the float32 model)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="of the computation (default auto: bf16 where the device computes it natively, a GPU or a CPU with "
        "AVX-512 BF16 or AMX, else fp32; fp32 gives the same answers on every machine)",
    )


# -- the commands ------------------------------------------------------------------------------------


def add_models(commands: argparse._SubParsersAction) -> None:
    """`resnet models`: every model with its size and cost."""
    from .models import families

    p = commands.add_parser("models", help="list every model with its size and cost")
    p.add_argument("--family", choices=families(), help="only this family")
    _json_option(p)
    p.set_defaults(run=_models)


def _models(args: argparse.Namespace) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from .models import describe, list_models
    from .models.weights import available_weights

    rows = [{**describe(name), "weights": available_weights(name)} for name in list_models(args.family)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("model", "family", "layers", "shortcut", "params", "mult-adds", "input", "weights"):
        table.add_column(column, justify="right" if column in ("layers", "params", "mult-adds") else "left")
    for r in rows:
        size = "×".join(map(str, r["input_shape"][1:] if len(r["input_shape"]) == 3 else r["input_shape"]))
        weights = ", ".join(f"{tag} ({error:.2%} error)" for tag, error in r["weights"].items())
        table.add_row(
            r["name"], r["family"], str(r["layers"]), r["shortcut"], f"{r['params']:,}", _si(r["macs"]), size, weights
        )
    Console(width=200).print(table)


def _si(n: float) -> str:
    """1.81G, 40.55M: multiply-adds as the paper writes them."""
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.2f}M"


def add_recipes(commands: argparse._SubParsersAction) -> None:
    """`resnet recipes [RECIPE]`: the recipes and every key."""
    p = commands.add_parser(
        "recipes", help="the recipes, and every key with its type, default, allowed values, meaning"
    )
    p.add_argument(
        "recipe", nargs="?", help=f"show this recipe's values too: {', '.join(recipe_names())}, or a YAML file"
    )
    _json_option(p)
    p.set_defaults(run=_recipes)


def _recipes(args: argparse.Namespace) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .config import keys, load_recipe

    rows = keys(args.recipe)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    console = Console(width=200)
    if args.recipe is None:
        for name in recipe_names():
            console.print(f"[bold]{name}[/bold]: {escape(load_recipe(name).get('description', ''))}")
        console.print("\nkeys, with their defaults (what a recipe leaves out); `resnet recipes NAME` shows its values:")
    else:
        console.print(f"[bold]{escape(args.recipe)}[/bold]: {escape(load_recipe(args.recipe).get('description', ''))}")
    table = Table(box=box.SIMPLE_HEAD)
    columns = ["key", "type", "default"] + (["value"] if args.recipe else []) + ["allowed", "meaning"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(*(escape(_yaml_text(r[c]) if c in ("default", "value") else r[c]) for c in columns))
    console.print(table)
    console.print("Set any key with --set KEY=VALUE (the value read as YAML), or in a recipe file (--recipe my.yaml).")


def _yaml_text(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def add_train(commands: argparse._SubParsersAction) -> None:
    """`resnet train`: resnet.train."""
    p = commands.add_parser(
        "train",
        help="train a network (default: resnet20 with the fast recipe on the embedded CIFAR-10 subset, minutes "
        "on a CPU; --recipe cifar-paper for the paper's protocol)",
    )
    p.add_argument("--model", help="a name from `resnet models` (default: the recipe's)")
    p.add_argument(
        "--data",
        help="a class-folder folder or .tar(.gz), a CIFAR python archive, cifar10, cifar100 "
        "(default: the embedded CIFAR-10 subset)",
    )
    _recipe_option(p, "fast")
    _run_options(p, "runs/MODEL-RECIPE-TIME")
    _length_options(p)
    p.add_argument(
        "--stop-after",
        type=_positive_int,
        metavar="N",
        help="pause after N iterations of this session, with a checkpoint (--resume continues)",
    )
    _time_limit_option(p)
    p.add_argument("--download", action="store_true", help="download cifar10/cifar100 if missing")
    _skip_bad_images_option(p)
    p.set_defaults(run=_train)


def _skip_bad_images_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable images instead of stopping; they are listed in the run folder's skipped-images.txt",
    )


def _overrides(args: argparse.Namespace) -> dict:
    """--set, with the RECIPE_FLAGS the command has and was given."""
    overrides = parse_overrides(args.set)
    for dest, key in RECIPE_FLAGS.items():
        if getattr(args, dest, False):
            set_once(overrides, key, True)
    return overrides


def _train(args: argparse.Namespace) -> None:
    from .train.api import train

    result = train(
        model=args.model,
        data=args.data,
        recipe=args.recipe,
        out=args.out,
        overrides=_overrides(args),
        iters=args.iters,
        epochs=args.epochs,
        device=args.device,
        resume=args.resume,
        force=args.force,
        stop_after=args.stop_after,
        time_limit=args.time_limit,
    )
    if result.rank == 0:
        _report(result)


def _report(result) -> None:
    """The last lines of a training command: the images skipped, where the run is, and its final accuracy
    (or the pause)."""
    if result.skipped_images:
        from .run_folder import SKIPPED

        listed = result.out / SKIPPED
        print(f"skipped {result.skipped_images} unreadable images (--skip-bad-images), listed in {listed}")
    if not result.finished:
        print(f"paused at iteration {result.steps}: resnet train --resume --out {result.out} continues")
        return
    print(f"run folder {result.out} · plot {result.plot}")
    print(
        f"final {result.split} accuracy {100 * result.test_accuracy:.2f}% (top-1 error {100 * result.test_error:.2f}%, "
        f"top-5 error {100 * result.test_top5_error:.2f}%) after {result.steps} iterations"
    )


def add_finetune(commands: argparse._SubParsersAction) -> None:
    """`resnet finetune`: resnet.finetune."""
    p = commands.add_parser("finetune", help="fine-tune pre-trained weights on a data set, with a new classifier")
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="WEIGHTS",
        help="a checkpoint of resnet train, a torchvision/timm/safetensors file, or weights by name with --model "
        "(imagenet: torchvision's; cifar10: this package's, see resnet models)",
    )
    p.add_argument("--data", help="the data set to fine-tune on (as for resnet train)")
    p.add_argument("--model", help="the network (default: the checkpoint's)")
    p.add_argument(
        "--mode",
        choices=CHOICES["finetune.mode"],
        help="linear probe (frozen backbone and BN), full (backbone at a lower lr), gradual unfreezing "
        "(default: the recipe's finetune.mode, full)",
    )
    _recipe_option(p, "finetune")
    _run_options(p, "runs/MODEL-finetune-TIME")
    _length_options(p)
    _time_limit_option(p)
    _skip_bad_images_option(p)
    p.set_defaults(run=_finetune)


def _finetune(args: argparse.Namespace) -> None:
    from .train.api import finetune

    result = finetune(
        source=args.source,
        data=args.data,
        model=args.model,
        mode=args.mode,
        recipe=args.recipe,
        out=args.out,
        overrides=_overrides(args),
        iters=args.iters,
        epochs=args.epochs,
        device=args.device,
        resume=args.resume,
        force=args.force,
        time_limit=args.time_limit,
    )
    if result.rank == 0:
        _report(result)


def add_eval(commands: argparse._SubParsersAction) -> None:
    """`resnet eval`: resnet.inference.evaluate."""
    from .train.evaluate import TTA

    p = commands.add_parser("eval", help="top-1/top-5 error, per-class accuracy, confusion matrix of a checkpoint")
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="a checkpoint of resnet train, or another library's weights file (with --model and --data); "
        "none with --weights",
    )
    p.add_argument("--data", help="data set (default: the one it was trained on; the embedded subset with --weights)")
    p.add_argument("--model", help="the network of a weights file that is not a checkpoint of resnet train")
    _weights_option(p)
    p.add_argument("--split", default="test", choices=["test", "val", "train"], help="the split to evaluate")
    p.add_argument(
        "--tta",
        default="none",
        choices=TTA,
        help="test-time augmentation; multiscale: §3.4's fully convolutional testing, the whole image and its "
        "mirror image at several scales (--scales), one image at a time",
    )
    p.add_argument(
        "--scales",
        type=_positive_int,
        nargs="+",
        metavar="SIDE",
        help="--tta multiscale: the shorter sides (default: the paper's 224 256 384 480 640, scaled by the "
        "training crop / 224)",
    )
    p.add_argument(
        "--size",
        type=_positive_int,
        help="side of the center crop evaluated (default: the checkpoint's data.eval_size, else its image size)",
    )
    p.add_argument("--out", type=Path, help="report folder (default: eval-SPLIT-TTA beside the checkpoint)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="images per batch")
    _device_option(p)
    _engine_option(p)
    _json_option(p)
    p.set_defaults(run=_eval)


def _eval(args: argparse.Namespace) -> None:
    from .inference import evaluate
    from .run_folder import RUNS

    args.checkpoint, shipped = _checkpoint(args, "evaluate")
    if shipped:  # the package's file knows its network; its report goes to runs/, not into the package
        args.model, args.data = None, args.data or "embedded"
        out = args.out or RUNS / f"eval-{args.checkpoint.stem}-{args.split}-{args.tta}"
    else:
        out = args.out or Path(args.checkpoint).parent / f"eval-{args.split}-{args.tta}"
    m = evaluate(
        path=args.checkpoint,
        data=args.data,
        split=args.split,
        tta=args.tta,
        out=out,
        batch_size=args.batch_size,
        device=args.device,
        engine=args.engine,
        precision=args.precision,
        model=args.model,
        size=args.size,
        scales=args.scales,
    )
    if args.json:
        print(json.dumps(m, indent=2))
        return
    width = max(len(c) for c in m["classes"])
    for name, accuracy in zip(m["classes"], m["per_class_accuracy"]):
        print(f"  {name:<{width}}  {100 * accuracy:6.2f}%")
    print(f"report in {out} (metrics.json, confusion.csv, confusion.png)")
    print(
        f"{m['model']} on {m['count']} {m['split']} images (tta {m['tta']}): top-1 error {100 * m['top1_error']:.2f}%, "
        f"top-5 error {100 * m['top5_error']:.2f}%, accuracy {100 * (1 - m['top1_error']):.2f}%"
    )


def add_compare(commands: argparse._SubParsersAction) -> None:
    """`resnet compare`: resnet.compare."""
    p = commands.add_parser(
        "compare", help="runs side by side: final and last-three test error, training error, time, hardware; curves"
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (of resnet train)")
    p.add_argument("--plot", type=Path, metavar="PNG", help="their curves in one figure (Fig. 6 style)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument(
        "--at",
        type=_step_or_common,
        metavar="STEP|common",
        help="each run at its last evaluation up to STEP (common: the last step all runs reached), not at its end",
    )
    _json_option(p)
    p.set_defaults(run=_compare)


def _step_or_common(text: str) -> int | str:
    if text == "common":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"a step (a positive whole number) or common, not {text!r}")


def _compare(args: argparse.Namespace) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from .compare import as_dicts, cells, compare, header, markdown, plot

    rows = compare(args.runs, args.at)
    if args.json:
        print(json.dumps(as_dicts(rows), indent=2))
    elif args.markdown:
        print(markdown(rows), end="")
    else:
        table = Table(*header(rows), box=box.SIMPLE_HEAD)
        for row in rows:
            table.add_row(*cells(row))
        Console(width=200).print(table)
    if args.plot:
        print(f"wrote {plot(rows, args.plot)}", file=sys.stderr if args.json else sys.stdout)


def add_predict(commands: argparse._SubParsersAction) -> None:
    """`resnet predict`: resnet.inference.load, then Classifier.predict."""
    p = commands.add_parser("predict", help="the most probable classes of images")
    p.add_argument(
        "paths", nargs="+", metavar="[CHECKPOINT] IMAGE", help="a checkpoint (none with --weights), then images"
    )
    p.add_argument("--model", help="with --weights: the network")
    _weights_option(p)
    p.add_argument("--topk", type=int, default=5, help="how many classes to print for each image")
    _device_option(p)
    _engine_option(p)
    _json_option(p)
    p.set_defaults(run=_predict)


def _predict(args: argparse.Namespace) -> None:
    from .inference import load

    if args.topk < 1:
        raise UsageError(f"--topk must be positive, not {args.topk}")
    checkpoint = _shipped(args, args.paths)
    if checkpoint is None:
        if len(args.paths) < 2:
            raise UsageError("name a checkpoint and at least one image (or --model NAME --weights cifar10 IMAGE...)")
        checkpoint, *args.images = args.paths
    else:
        args.images = args.paths
    classifier = load(path=checkpoint, device=args.device, engine=args.engine, precision=args.precision)
    results = classifier.predict(images=args.images, topk=args.topk)
    if args.json:
        rows = [
            {"image": str(path), "top": [{"class": c, "probability": p} for c, p in top]}
            for path, top in zip(args.images, results)
        ]
        print(json.dumps(rows, indent=2))
        return
    for path, top in zip(args.images, results):
        print(f"{path}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in top))


def add_reproduce(commands: argparse._SubParsersAction) -> None:
    """`resnet reproduce EXPERIMENT`: resnet.analysis.degradation, shortcuts, mlp_depth and lesion."""
    from .analysis.reproduce import PRESETS

    p = commands.add_parser(
        "reproduce",
        help="the paper's evidence: degradation (Fig. 6, 7, Table 6), shortcuts; lesion, landscape, gradients",
    )
    p.add_argument("experiment", choices=["degradation", "shortcuts", "mlp", "lesion", "landscape", "gradients"])
    p.add_argument("--data", help="CIFAR-10 (e.g. cifar10-jpeg.tar.gz, or cifar10 --download); --quick: the subset")
    p.add_argument("--out", type=Path, help="report folder (default: reproductions/EXPERIMENT, with -quick or -PRESET)")
    p.add_argument("--quick", action="store_true", help="a few minutes on a CPU: 200 iterations on the subset")
    p.add_argument("--iters", type=_positive_int, help="iterations per model (default: the recipe's 64k)")
    p.add_argument(
        "--networks",
        type=Path,
        help="the folder of the trained networks (default: OUT/runs); reproductions given the same one train a "
        "network of the same settings once (e.g. lesion's and gradients' cpu presets share ResNet-56 and plain-56)",
    )
    p.add_argument(
        "--preset",
        choices=sorted({name for presets in PRESETS.values() for name in presets}),
        help="a named protocol: "
        + "; ".join(
            f"{name} ({exp}): {p.description}" for exp, presets in PRESETS.items() for name, p in presets.items()
        ),
    )
    p.add_argument(
        "--depths",
        type=_depth,
        nargs="+",
        help="degradation: depths (default 20 32 44 56; --quick 20 32); gradients: (default 20 56)",
    )
    p.add_argument("--add", type=_depth, nargs="+", default=[], help="degradation: further depths, e.g. 110 1202")
    p.add_argument(
        "--seeds", type=int, nargs="+", help="degradation: train each ResNet once per seed (default: the recipe's)"
    )
    p.add_argument(
        "--depth", type=_depth, help="shortcuts: the depth (default 32); lesion, landscape: (default 56; --quick 20)"
    )
    p.add_argument("--steps", type=_positive_int, help="landscape: points per axis, odd (default 11; the paper's 51)")
    p.add_argument(
        "--shortcut",
        choices=["A", "B", "C"],
        help="landscape: the ResNet's shortcut option (default B; --preset cpu: A)",
    )
    p.add_argument("--samples", type=_positive_int, help="landscape: Hutchinson vectors of the trace (default 20)")
    p.add_argument(
        "--blocks",
        type=_positive_int,
        nargs="+",
        default=[1, 4, 8, 16],
        help="mlp: dense blocks of each depth (default: 1 4 8 16)",
    )
    p.add_argument(
        "--at",
        type=_step_or_common,
        metavar="STEP|common",
        help="degradation, shortcuts, mlp: report the runs as they stand at iteration STEP (common: the last one "
        "all reached), training none",
    )
    _lesion_options(p)
    _set_option(p)
    _device_option(p, recipe=True)
    _time_limit_option(p)
    p.set_defaults(run=_reproduce)


def _lesion_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        help="lesion, landscape: the ResNet's weights, measured in place of training (lesion: a checkpoint or another "
        "library's file; landscape: a checkpoint of resnet train)",
    )
    p.add_argument("--plain-weights", help="lesion, landscape: the plain net's weights, likewise")
    p.add_argument(
        "--draws", type=_positive_int, help="lesion: random draws per number of blocks deleted or swapped (3)"
    )
    p.add_argument(
        "--images",
        type=_positive_int,
        help="lesion: test images evaluated (default: all); landscape: training images per loss (default 512)",
    )
    p.add_argument(
        "--recalibrate",
        type=_positive_int,
        default=0,
        help="lesion: re-estimate each changed network's batch norms on this many training images (default: off)",
    )


READ_RUNS_ONLY = ("degradation", "shortcuts", "mlp")  # reproductions whose reports read only the runs' logs


def _reproduce(args: argparse.Namespace) -> None:
    from . import analysis
    from .analysis.driver import QUICK_NOTE
    from .analysis.reproduce import PRESETS

    if args.preset and args.experiment not in PRESETS:
        raise UsageError(f"reproduce {args.experiment} has no presets ({', '.join(PRESETS)} have them)")
    if args.at is not None and args.experiment not in READ_RUNS_ONLY:
        raise UsageError(
            f"reproduce {args.experiment} measures the trained networks: --at is for {', '.join(READ_RUNS_ONLY)}"
        )
    at = {} if args.at is None else {"at": args.at}
    # each protocol its own default folder: a --quick or preset run never meets a full one's models
    variant = "-quick" if args.quick else f"-{args.preset}" if args.preset else ""
    common = dict(
        out=args.out or Path(f"reproductions/{args.experiment}{variant}"),
        quick=args.quick,
        iters=args.iters,
        device=args.device,
        command="resnet " + " ".join(sys.argv[1:]),
        overrides=args.set,
        time_limit=args.time_limit,
        networks=args.networks,
    )
    if args.experiment == "degradation":
        r = analysis.degradation(
            depths=args.depths, data=args.data, add=args.add, seeds=args.seeds, preset=args.preset, **at, **common
        )
    elif args.experiment == "mlp":
        r = analysis.mlp_depth(blocks=args.blocks, data=args.data or "digits", **at, **common)
    elif args.experiment == "lesion":
        lesion = {k: getattr(args, k) for k in ("draws", "images", "recalibrate", "weights", "plain_weights")}
        r = analysis.lesion(depth=args.depth, data=args.data, preset=args.preset, **lesion, **common)
    elif args.experiment == "landscape":
        if (args.weights is None) != (args.plain_weights is None):
            raise UsageError("landscape: give both --weights (the ResNet's checkpoint) and --plain-weights, or neither")
        weights = (args.weights, args.plain_weights) if args.weights else None
        sizes = dict(depth=args.depth, steps=args.steps, images=args.images, samples=args.samples, weights=weights)
        sizes["shortcut"] = args.shortcut
        r = analysis.landscape(data=args.data, preset=args.preset, **sizes, **common)
    elif args.experiment == "gradients":
        r = analysis.shattered_gradients(depths=args.depths, data=args.data, preset=args.preset, **common)
    else:
        r = analysis.shortcuts(depth=args.depth, data=args.data, preset=args.preset, **at, **common)
    print(f"report {r.html} · summary {r.summary}")
    for finding in r.findings:
        print(finding.line())
    if args.quick:
        print(QUICK_NOTE)


def add_superres(commands: argparse._SubParsersAction) -> None:
    """`resnet superres train|apply`: resnet.superres.train and apply."""
    p = commands.add_parser("superres", help="super-resolution by residual learning (VDSR, EDSR): train, apply")
    superres = p.add_subparsers(dest="superres_command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = superres.add_parser("train", help="train vdsr or edsr_baseline on a folder or .tar(.gz) of images")
    p.add_argument("--model", help="vdsr or edsr_baseline (default: vdsr)")
    p.add_argument("--data", help="a folder or .tar(.gz) of images (train/ and test/ used if present)")
    p.add_argument("--scale", type=int, help="upscaling factor, 2 or 4 (default: 2)")
    _run_options(p, "runs/MODEL-xSCALE-TIME", "e.g. --set lr=0.001 --set patch_size=32")
    p.add_argument("--iters", type=_positive_int, help="length of the run in iterations (default: 2000)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes on a CPU: 200 iterations of 32-pixel patches (default data: the shipped example images)",
    )
    _time_limit_option(p)
    p.set_defaults(run=_superres_train)
    p = superres.add_parser("apply", help="upscale images with a checkpoint of superres train")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="low-resolution images")
    p.add_argument("--out", type=Path, required=True, help="folder for the upscaled IMAGE_xSCALE.png files")
    p.add_argument(
        "--reference", nargs="+", metavar="HR", help="high-resolution originals, one per IMAGE: print PSNR and SSIM"
    )
    _device_option(p)
    p.set_defaults(run=_superres_apply)


def _superres_train(args: argparse.Namespace) -> None:
    from .superres import train

    r = train(
        model=args.model,
        data=args.data,
        scale=args.scale,
        out=args.out,
        overrides=args.set,
        iters=args.iters,
        device=args.device,
        resume=args.resume,
        force=args.force,
        time_limit=args.time_limit,
        quick=args.quick,
    )
    print(f"run folder {r.out} · plot {r.plot}")
    print(
        f"held-out PSNR {r.psnr:.2f} dB, SSIM {r.ssim:.4f} (bicubic {r.bicubic_psnr:.2f} dB, {r.bicubic_ssim:.4f}) "
        f"after {r.steps} iterations"
    )


def _superres_apply(args: argparse.Namespace) -> None:
    from .superres import apply

    rows = apply(path=args.checkpoint, images=args.images, out=args.out, references=args.reference, device=args.device)
    for row in rows:
        metrics = ""
        if "psnr" in row:
            metrics = (
                f": PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f} "
                f"(bicubic {row['bicubic_psnr']:.2f} dB, {row['bicubic_ssim']:.4f})"
            )
        print(f"{row['image']} -> {row['output']}{metrics}")


def add_export(commands: argparse._SubParsersAction) -> None:
    """`resnet export`: resnet.export.export_model."""
    from .export import FORMATS

    p = commands.add_parser(
        "export", help="ONNX, TorchScript, safetensors or OpenVINO IR of a checkpoint, verified against it"
    )
    p.add_argument("checkpoint", nargs="?", help="a checkpoint of resnet train (none with --weights)")
    p.add_argument("--model", help="with --weights: the network")
    _weights_option(p)
    p.add_argument(
        "--format",
        default="onnx",
        choices=list(FORMATS),
        help="the file format; openvino writes FILE.xml and FILE.bin",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="the file (default: beside the checkpoint, e.g. best.onnx; for --weights, MODEL-TAG.onnx here)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=2, help="images of the verification batch (≥ 2)")
    p.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> None:
    from .export import FORMATS, export_model

    args.checkpoint, shipped = _checkpoint(args, "export")
    if shipped:  # what is written goes to the current folder, not into the package
        args.out = args.out or Path(args.checkpoint.stem + FORMATS[args.format])
    r = export_model(checkpoint=args.checkpoint, format=args.format, out=args.out, batch_size=args.batch_size)
    print(
        f"wrote {r.path} ({r.format}): largest |difference| from the PyTorch model's logits {r.max_abs_diff:.1e} "
        f"on random batches of {r.batch_size} and {r.batch_size + 1}"
    )


def add_features(commands: argparse._SubParsersAction) -> None:
    """`resnet features`: resnet.features.extract_features."""
    p = commands.add_parser("features", help="penultimate-layer embeddings of every image of a folder (.npy, .csv)")
    p.add_argument("checkpoint", nargs="?", help="a checkpoint of resnet train (none with --weights)")
    p.add_argument("--model", help="with --weights: the network")
    _weights_option(p)
    p.add_argument("--data", required=True, help="a folder of images (searched recursively; class folders give labels)")
    p.add_argument("--out", type=Path, required=True, help="the .npy file; the image list goes beside it (.csv)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="images per batch")
    _device_option(p)
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable images out instead of stopping; their count and the first are printed",
    )
    p.set_defaults(run=_features)


def _features(args: argparse.Namespace) -> None:
    from .features import extract_features, output_paths

    output_paths(args.out)  # a wrong name is reported before the work, not after
    f = extract_features(
        checkpoint=_checkpoint(args, "read")[0],
        data=args.data,
        batch_size=args.batch_size,
        device=args.device,
        skip_bad_images=args.skip_bad_images,
    )
    array, sidecar = f.save(args.out)
    labels = f" with the labels of {len(set(f.labels))} class folders" if f.labels else ""
    print(f"wrote {array} ({f.features.shape[0]}×{f.features.shape[1]} float32) and {sidecar}{labels}")
    if f.skipped:
        print(f"skipped {len(f.skipped)} unreadable images, e.g. {f.skipped[0]}")


VERSION = f"resnet {__version__}"
COMMANDS = (
    add_models,
    add_recipes,
    add_train,
    add_finetune,
    add_eval,
    add_compare,
    add_predict,
    add_reproduce,
    add_superres,
    add_export,
    add_features,
)


def build_parser() -> argparse.ArgumentParser:
    """The `resnet` parser: each command added by its add_<command> function, in COMMANDS' order."""
    parser = _Parser(prog="resnet", description="Residual networks (He et al. 2015): models, training, evidence.")
    parser.add_argument("--version", action="version", version=VERSION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:  # before the commands, whose choices load torch
        print(VERSION)
        return 0
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the commands' choices are imported: no traceback either
        print("resnet: interrupted", file=sys.stderr)
        return 130
    try:
        args.run(args)
    except BrokenPipeError:  # the reader went away (`resnet models --json | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        return 141  # 128 + SIGPIPE, as the shell reports a command killed by it
    except UsageError as e:
        print(f"resnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(f"resnet {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except Stopped as e:
        print(f"resnet {args.command}: {e}", file=sys.stderr)
        return e.code
    except OSError as e:  # a write no layer below turned into a RunError (a figure, a log row)
        if e.errno != errno.ENOSPC:
            raise
        print(f"resnet {args.command}: stopped: {e.filename or 'a file'}: disk full while writing", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"resnet {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
