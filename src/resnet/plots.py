"""Figures in the paper's style (Fig. 6: training error dashed, test error solid)."""

from __future__ import annotations

from pathlib import Path


def figure(**kwargs):
    """A matplotlib Figure, not pyplot's: the user's backend and open figures stay as they are. matplotlib
    is imported here, by the first figure drawn, not when a command starts."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def cycle() -> list[str]:
    """The colors of matplotlib's property cycle, in order."""
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def error_curves(
    runs: dict[str, list[dict]], path: Path | None = None, title: str = "", ax=None, eval_key: str = "test_error"
):
    """Training (dashed) and test (solid) error in % against iterations, one color per run.

    `runs` maps a label to its metrics rows (dicts with step, train_error and `eval_key`).
    Saves a PNG to `path` when given; returns the axes.
    """
    own = ax is None
    if own:
        fig = figure(figsize=(6, 4.2))
        ax = fig.subplots()
    colors = cycle()
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        for key, style, width, name in (("train_error", "--", 1, None), (eval_key, "-", 1.6, label)):
            points = [r for r in rows if r.get(key) is not None]
            ax.plot(
                [r["step"] for r in points],
                [100 * r[key] for r in points],
                style,
                color=color,
                linewidth=width,
                marker="o" if len(points) == 1 else None,  # a run just started: one point, no line to draw
                markersize=4,
                label=name,
            )
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_title(title or "training error (dashed), test error (solid)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if own and path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return ax


def confusion_matrix(confusion: list[list[int]], classes: list[str], path, title: str = "") -> None:
    """The confusion matrix as a PNG (to a path or a binary file): rows true classes, columns predicted,
    each row normalized."""
    import numpy as np

    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    n = len(classes)
    size = max(4.5, 0.45 * n + 2)
    fig = figure(figsize=(size, size * 0.9))
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        int(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
