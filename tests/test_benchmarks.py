"""The benchmark harness runs end to end (--quick: tiny sizes on the CPU). Plumbing only: no timing is
asserted; the figures are in BENCHMARKS.md."""

import importlib.util
import json
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_of_every_section(bench, tmp_path, capsys, monkeypatch):
    system_tmp = tmp_path / "tmp"  # the system temp folder of this run: the benchmark leaves nothing in it
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    # torch's compile cache lives in the temp folder and is kept between runs by design: kept out of this one
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torchinductor"))
    out = tmp_path / "results.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    names = [r["benchmark"] for r in results["rows"]]
    cpu = [n for n in names if n.startswith("cpu ")]
    assert len(names) == len(cpu) + 5
    for ours in ("ours", "ours, torch engine"):
        for peer in ("OpenVINO", "ONNX Runtime", "eager model"):
            assert f"cpu resnet20 inference, batch 2: {ours} / {peer}" in cpu
    assert {n for n in cpu if "training" in n} == {
        "cpu resnet20 cifar-paper training, batch 16: ours / eager fp32",
        "cpu resnet20 cifar-paper training, batch 16: ours / eager bf16",
    }
    [vs_openvino] = [r for r in results["rows"] if r["benchmark"].endswith("batch 2: ours / OpenVINO")]
    assert "% of the" in vs_openvino["notes"] and "differs from fp32 eager by" in vs_openvino["notes"]
    assert all(r["ours"] > 0 and (r["peer"] is None or r["peer"] > 0 and r["ratio"] > 0) for r in results["rows"])
    assert results["environment"]["torch"] and results["quick"] is True
    [speedrun] = [r for r in results["rows"] if r["benchmark"].startswith("speedrun")]
    [run] = speedrun["runs"]["ours"]  # one short run of the speedrun recipe, timed and evaluated
    assert run["epochs"] == 1 and run["seconds"] > 0 and 0 <= run["accuracy"] <= 1 and speedrun["peer"] is None
    assert (tmp_path / "speedrun-quick.png").stat().st_size > 0
    table = capsys.readouterr().out
    assert table.startswith("| benchmark | ours | peer | ratio |") and table.count("\n| ") >= 6
    # .ses: ONNX Runtime's telemetry session id, one file it writes once and reuses
    assert sorted(p.name for p in system_tmp.iterdir() if p.name != ".ses") == []


def test_ratio_direction(bench):
    assert bench.row("x", 2.0, 1.0, "images/s")["ratio"] == 2.0
    assert bench.row("x", 2.0, 4.0, "ms", higher_is_better=False)["ratio"] == 2.0
    assert bench.row("x", 1.0, 1.0, "images/s", goal=1.25)["met"] is False
