"""Figures the experiments share: Fig. 6's two panels of error curves, and saving a figure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..plots import error_curves, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def side_by_side(panels: dict[str, dict[str, list[dict]]], path: Path) -> None:
    """Fig. 6's layout: one panel of error curves per kind of network (plain, residual), each
    {legend: metrics rows}."""
    fig = figure(figsize=(11, 4.2))
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, (name, runs) in zip(axes, panels.items()):
        error_curves(runs, ax=ax, title=f"{name} networks: training error (dashed), test error (solid)")
    save(fig, path)


def save(fig: Figure, path: Path) -> None:
    """Lay out `fig` and write it to `path` as a PNG."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
