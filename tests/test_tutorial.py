"""docs/tutorial.ipynb runs top to bottom in its QUICK mode: every cell, and every assert that checks
a claim of its text, within a time limit per cell."""

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="executing the tutorial needs nbclient (the test extra)")
nbformat = pytest.importorskip("nbformat", reason="executing the tutorial needs nbformat (the test extra)")

TUTORIAL = Path(__file__).parents[1] / "docs" / "tutorial.ipynb"
CELL_SECONDS = 240  # longer than this, a cell has hung or run away (the longest, QUICK, takes 35-60 s on 2 cores)


def test_the_tutorial_runs_in_quick_mode_and_its_claims_hold(monkeypatch):
    monkeypatch.setenv("RESNET_TUTORIAL_QUICK", "1")
    notebook = nbformat.read(TUTORIAL, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(TUTORIAL.parent)}}
    )
    client.execute()  # CellExecutionError (a failed assert among them) or CellTimeoutError fail the test
    printed = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert "QUICK=True" in printed and "quick run:" in printed.lower()
    for cell in notebook.cells:  # every figure the text shows is drawn: a cell that shows one outputs an image
        if "plt.show()" in cell.source:
            assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source
