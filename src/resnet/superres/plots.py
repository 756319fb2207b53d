"""PSNR against iterations: one solid curve per run, plain bicubic upscaling dashed."""

from __future__ import annotations

from pathlib import Path

from .. import run_folder
from ..errors import UsageError
from ..plots import figure


def psnr_curves(runs: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """Held-out PSNR (dB) against iterations of each run, and bicubic's PSNR as a dashed line.

    `runs` maps a label to its metrics rows (dicts with step, psnr and bicubic_psnr); the PNG is
    written to `path`, which is returned. The y axis starts near bicubic so that the differences that
    matter stay visible; points far below it sit on the axis edge as triangles labelled with their value.
    """
    fig = figure(figsize=(6, 4.2))
    ax = fig.subplots()
    bicubic = next(iter(runs.values()))[0]["bicubic_psnr"]
    best = max(bicubic, *(r["psnr"] for rows in runs.values() for r in rows))
    low = bicubic - max(4.0, 3 * (best - bicubic))
    for i, (label, rows) in enumerate(runs.items()):
        steps, values = [r["step"] for r in rows], [r["psnr"] for r in rows]
        (line,) = ax.plot(steps, values, "-", marker=".", linewidth=1.6, label=label)
        clipped = [(s, v) for s, v in zip(steps, values) if v < low]
        for s, v in clipped:  # points below the axis: a triangle on its edge with the value
            ax.plot(s, low, "v", color=line.get_color(), clip_on=False)
            ax.annotate(
                f"{v:.1f}",
                (s, low),
                xytext=(4, 3 + 9 * i),
                textcoords="offset points",
                fontsize=7,
                color=line.get_color(),
            )
    ax.axhline(bicubic, color="gray", linestyle="--", linewidth=1, label=f"bicubic ({bicubic:.2f} dB)")
    ax.set_ylim(low, best + 0.25 * max(1.0, best - bicubic))
    ax.set_xlabel("iterations")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title(title or "held-out PSNR", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def compare_runs(runs: dict[str, str | Path], path: str | Path, title: str = "") -> Path:
    """One PSNR plot of several run folders of `resnet superres train` ({label: folder}), to `path`."""
    rows = {}
    for label, folder in runs.items():
        if not (Path(folder) / run_folder.METRICS).is_file():
            raise UsageError(f"{folder}: no metrics.jsonl (not a run folder of resnet superres train)")
        rows[label] = run_folder.read(Path(folder))
    return psnr_curves(rows, Path(path), title)
