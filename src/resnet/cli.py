"""The command line: a thin shell over the Python API. `resnet --help` lists the commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _models(args: argparse.Namespace) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from .models import describe, families, list_models

    if args.family is not None and args.family not in families():
        raise UsageError(f"unknown family {args.family!r}; choose one of: {', '.join(families())}")
    rows = [describe(name) for name in list_models(args.family)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("model", "family", "layers", "shortcut", "params", "mult-adds", "input"):
        table.add_column(column, justify="right" if column in ("layers", "params", "mult-adds") else "left")
    for r in rows:
        size = "×".join(map(str, r["input_shape"][1:] if len(r["input_shape"]) == 3 else r["input_shape"]))
        table.add_row(r["name"], r["family"], str(r["layers"]), r["shortcut"], f"{r['params']:,}", _si(r["macs"]), size)
    Console(width=200).print(table)


def _si(n: float) -> str:
    """1.81G, 40.55M: multiply-adds as the paper writes them."""
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.2f}M"


def _train(args: argparse.Namespace) -> None:
    from .train import train

    overrides = list(args.set)
    if args.skip_bad_images:
        overrides.append("data.skip_bad_images=true")
    if args.download:
        overrides.append("data.download=true")
    result = train(
        args.model,
        args.data,
        args.recipe,
        args.out,
        overrides,
        iters=args.iters,
        epochs=args.epochs,
        device=args.device,
        resume=args.resume,
        force=args.force,
    )
    if result.rank != 0:
        return
    print(f"run folder {result.out} · plot {result.plot}")
    print(
        f"final {result.split} accuracy {100 * result.test_accuracy:.2f}% (top-1 error {100 * result.test_error:.2f}%, "
        f"top-5 error {100 * result.test_top5_error:.2f}%) after {result.steps} iterations"
    )


def _eval(args: argparse.Namespace) -> None:
    from .inference import evaluate

    out = args.out or Path(args.checkpoint).parent / f"eval-{args.split}-{args.tta}"
    m = evaluate(args.checkpoint, args.data, args.split, args.tta, out, args.batch_size, args.device)
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


def _predict(args: argparse.Namespace) -> None:
    from .inference import load

    if args.topk < 1:
        raise UsageError(f"--topk must be positive, not {args.topk}")
    classifier = load(args.checkpoint, args.device)
    results = classifier.predict(args.images, args.topk)
    if args.json:
        rows = [
            {"image": str(path), "top": [{"class": c, "probability": p} for c, p in top]}
            for path, top in zip(args.images, results)
        ]
        print(json.dumps(rows, indent=2))
        return
    for path, top in zip(args.images, results):
        print(f"{path}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in top))


def _reproduce(args: argparse.Namespace) -> None:
    from . import analysis

    common = dict(
        data=args.data,
        quick=args.quick,
        iters=args.iters,
        device=args.device,
        command="resnet " + " ".join(sys.argv[1:]),
    )
    if args.experiment == "degradation":
        depths = (args.depths or ([20, 32] if args.quick else [20, 32, 44, 56])) + args.add
        html, md = analysis.degradation(depths, out=args.out or Path("reproductions/degradation"), **common)
    else:
        html, md = analysis.shortcuts(args.depth, out=args.out or Path("reproductions/shortcuts"), **common)
    print(f"report {html} · summary {md}")
    for line in md.read_text().split("## Findings")[1].split("\n## ")[0].strip().splitlines():
        print(line)


def _depth(text: str) -> int:
    value = int(text)
    if value < 8 or (value - 2) % 6:
        raise argparse.ArgumentTypeError(f"CIFAR networks have 6n+2 layers (20, 32, 44, 56, 110, 1202), not {value}")
    return value


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


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="resnet", description="Residual networks (He et al. 2015): models, training, evidence.")
    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("models", help="list every model with its size and cost")
    p.add_argument("--family", help="only this family (e.g. imagenet, cifar)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_models)

    p = commands.add_parser("train", help="train a network (default: resnet20 on the embedded CIFAR-10 subset)")
    p.add_argument("--model", help="a name from `resnet models` (default: the recipe's)")
    p.add_argument(
        "--data",
        help="a class-folder folder or .tar(.gz), a CIFAR python archive, cifar10, cifar100 "
        "(default: the embedded CIFAR-10 subset)",
    )
    p.add_argument("--recipe", default="cifar-paper", help="cifar-paper, imagenet-paper, fast, or a YAML file")
    p.add_argument("--out", type=Path, help="run folder (default: runs/MODEL-RECIPE-TIME)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set optimizer.lr=0.05 (repeatable)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_float, help="length of the run in epochs")
    length.add_argument("--iters", type=_positive_int, help="length of the run in iterations")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace a run already in --out")
    p.add_argument("--download", action="store_true", help="download cifar10/cifar100 if missing")
    p.add_argument("--skip-bad-images", action="store_true", help="skip and count unreadable images")
    p.set_defaults(run=_train)

    p = commands.add_parser("eval", help="top-1/top-5 error, per-class accuracy, confusion matrix of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--data", help="data set (default: the one it was trained on)")
    p.add_argument("--split", default="test", help="test, val or train")
    p.add_argument("--tta", default="none", choices=["none", "flip", "10crop"], help="test-time augmentation")
    p.add_argument("--out", type=Path, help="report folder (default: beside the checkpoint)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_eval)

    p = commands.add_parser("predict", help="the most probable classes of images")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_predict)

    p = commands.add_parser("reproduce", help="the paper's evidence: degradation (Fig. 6, 7, Table 6), shortcuts")
    p.add_argument("experiment", choices=["degradation", "shortcuts"])
    p.add_argument("--data", help="CIFAR-10 (e.g. cifar10-jpeg.tar.gz, or cifar10 --download); --quick: the subset")
    p.add_argument("--out", type=Path, help="report folder (default: reproductions/EXPERIMENT)")
    p.add_argument("--quick", action="store_true", help="a few minutes on a CPU: 200 iterations on the subset")
    p.add_argument("--iters", type=_positive_int, help="iterations per model (default: the recipe's 64k)")
    p.add_argument("--depths", type=_depth, nargs="+", help="degradation: depths (default 20 32 44 56)")
    p.add_argument("--add", type=_depth, nargs="+", default=[], help="degradation: further depths, e.g. 110 1202")
    p.add_argument("--depth", type=_depth, default=32, help="shortcuts: the depth (default 32)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UsageError as e:
        print(f"resnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resnet {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
