"""Self-contained reports: an HTML page with its figures embedded, and a markdown summary beside it."""

from __future__ import annotations

import base64
import datetime
import html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import write_together
from ..train.runtime import cpu_name


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list]
    note: str = ""


@dataclass(frozen=True)
class Finding:
    """A claim of the paper checked against a reproduction's numbers: whether it holds, and the
    statement with the numbers that decide it."""

    holds: bool
    statement: str

    def line(self) -> str:
        """The finding as the summary lists it: "- ✅ reproduced: ..." or "- ❌ not reproduced: ..."."""
        return f"- {'✅ reproduced' if self.holds else '❌ not reproduced'}: {self.statement}"


@dataclass(frozen=True)
class Reproduction:
    """What a reproduction wrote (report.html, summary.md) and what it found."""

    html: Path
    summary: Path
    findings: list[Finding]


@dataclass
class Report:
    """What a reproduction found: figures (PNG files), tables, findings, the commands that made them."""

    title: str
    intro: str
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)
    tables: list[Table] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def write(self, out: Path) -> Reproduction:
        """Write report.html (figures embedded) and summary.md (figures linked) into `out`, both or neither."""
        html_text, markdown = self._html().encode(), self._markdown(out).encode()
        write_together(
            {out / "report.html": lambda f: f.write(html_text), out / "summary.md": lambda f: f.write(markdown)}
        )
        return Reproduction(out / "report.html", out / "summary.md", list(self.findings))

    def _markdown(self, out: Path) -> str:
        lines = [f"# {self.title}", "", self.intro, "", "## Findings", ""]
        lines += [finding.line() for finding in self.findings]
        for table in self.tables:
            lines += ["", f"## {table.title}", "", "| " + " | ".join(table.header) + " |"]
            lines += ["|" + "---|" * len(table.header)]
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
            if table.note:
                lines += ["", table.note]
        for caption, png in self.figures:
            lines += ["", f"![{caption}]({png.relative_to(out).as_posix()})", "", f"*{caption}*"]
        lines += ["", "## How this was made", "", "```sh", *self.commands, "```", "", versions_line(), ""]
        return "\n".join(lines)

    def _html(self) -> str:
        e = html.escape
        parts = [
            "<!doctype html><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title>",
            "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:right}th{background:#f4f4f4}img{max-width:100%}pre{background:#f6f6f6;padding:1em;"
            "overflow-x:auto}.ok{color:#17702b}.no{color:#b00020}</style>",
            f"<h1>{e(self.title)}</h1><p>{e(self.intro)}</p><h2>Findings</h2><ul>",
        ]
        for finding in self.findings:
            label = "<b class='ok'>reproduced</b>" if finding.holds else "<b class='no'>not reproduced</b>"
            parts.append(f"<li>{label}: {e(finding.statement)}</li>")
        parts.append("</ul>")
        for table in self.tables:
            parts.append(f"<h2>{e(table.title)}</h2><table><tr>")
            parts += [f"<th>{e(h)}</th>" for h in table.header]
            parts.append("</tr>")
            for row in table.rows:
                parts.append("<tr>" + "".join(f"<td>{e(_cell(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
            if table.note:
                parts.append(f"<p>{e(table.note)}</p>")
        for caption, png in self.figures:
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}'><figcaption>{e(caption)}</figcaption></figure>"
            )
        parts.append(
            f"<h2>How this was made</h2><pre>{e(chr(10).join(self.commands))}</pre><p>{e(versions_line())}</p>"
        )
        return "\n".join(parts)


def _cell(value) -> str:
    if isinstance(value, float):
        return "–" if np.isnan(value) else f"{value:.2f}"
    return str(value)


def machine() -> str:
    """The GPU's name, or the CPU's model and core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU {cpu_name()} × {os.cpu_count()}"


def versions_line() -> str:
    """Date, machine and library versions, for the record."""
    from .. import __version__

    device = machine()
    return (
        f"{datetime.date.today().isoformat()} · {device} · resnet {__version__} · torch {torch.__version__} · "
        f"numpy {np.__version__} · Python {sys.version.split()[0]}"
    )
