"""The command line: a thin shell over the Python API. `resnet --help` lists the commands."""

from __future__ import annotations

import argparse
import json
import sys

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
        size = f"{r['input_size']}×{r['input_size']}"
        table.add_row(r["name"], r["family"], str(r["layers"]), r["shortcut"], f"{r['params']:,}", _si(r["macs"]), size)
    Console(width=200).print(table)


def _si(n: float) -> str:
    """1.81G, 40.55M: multiply-adds as the paper writes them."""
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.2f}M"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="resnet", description="Residual networks (He et al. 2015): models, training, evidence.")
    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("models", help="list every model with its size and cost")
    p.add_argument("--family", help="only this family (e.g. imagenet, cifar)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_models)
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
