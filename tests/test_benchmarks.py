"""The benchmark harness and benchmarks/gpu.sh run end to end (--quick: tiny sizes on the CPU). Plumbing
only: no timing is asserted; the figures are in BENCHMARKS.md."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch

from resnet import run_folder
from resnet.errors import UsageError
from resnet.models.weights import read_metadata

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_of_the_cpu_section(bench, tmp_path, capsys, monkeypatch):
    system_tmp = tmp_path / "tmp"  # the system temp folder of this run: the benchmark leaves nothing in it
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    # torch's compile cache lives in the temp folder and is kept between runs by design: kept out of this one
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torchinductor"))
    out = tmp_path / "results.json"
    assert bench.main(["--quick", "--only", "cpu", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    names = [r["benchmark"] for r in results["rows"]]
    assert all(n.startswith("cpu ") for n in names) and results["sections"]["cpu"]["status"] == "ok"
    for ours in ("ours", "ours, torch engine"):
        for peer in ("OpenVINO", "ONNX Runtime", "eager model"):
            assert f"cpu resnet20 inference, batch 2: {ours} / {peer}" in names
    assert {n for n in names if "training" in n} == {
        "cpu resnet20 cifar-paper training, batch 16: ours / eager fp32",
        "cpu resnet20 cifar-paper training, batch 16: ours / eager bf16",
    }
    [vs_openvino] = [r for r in results["rows"] if r["benchmark"].endswith("batch 2: ours / OpenVINO")]
    assert "% of the" in vs_openvino["notes"] and "differs from fp32 eager by" in vs_openvino["notes"]
    assert all(r["ours"] > 0 and (r["peer"] is None or r["peer"] > 0 and r["ratio"] > 0) for r in results["rows"])
    assert results["environment"]["torch"] and results["quick"] is True
    table = capsys.readouterr().out
    assert table.startswith("| benchmark | ours | peer | ratio |") and table.count("\n| ") >= 6
    # .ses: ONNX Runtime's telemetry session id, one file it writes once and reuses
    assert sorted(p.name for p in system_tmp.iterdir() if p.name != ".ses") == []


def test_each_section_is_written_when_it_ends_and_a_failure_costs_only_itself(bench, tmp_path, capsys):
    out = tmp_path / "results.json"
    results = bench.load_results(out, {"device": "test"}, quick=True)

    def broken():
        assert json.loads(out.read_text())["rows"][0]["ours"] == 2.0  # the first section is on disk already
        raise RuntimeError("CUDA out of memory\nTried to allocate 2 GiB")

    assert bench.run_section("inference", lambda: [bench.row("a", 2.0, 1.0, "images/s")], results, out)
    assert not bench.run_section("feeding", broken, results, out)
    assert bench.run_section("cifar", lambda: [bench.row("c", 3.0, 1.0, "s")], results, out)
    written = json.loads(out.read_text())
    assert [(r["section"], r["ours"]) for r in written["rows"]] == [("inference", 2.0), ("cifar", 3.0)]
    assert written["sections"]["feeding"]["status"] == "failed: RuntimeError: CUDA out of memory"  # one line
    assert written["sections"]["cifar"]["status"] == "ok" and written["sections"]["cifar"]["cudagraph_skips"] == 0
    assert "feeding failed: RuntimeError: CUDA out of memory" in capsys.readouterr().err
    # a later process adds its section to the same file; running a section again replaces its rows
    again = bench.load_results(out, {"device": "test"}, quick=True)
    assert bench.run_section("inference", lambda: [bench.row("a", 5.0, 1.0, "images/s")], again, out)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["section"], r["ours"]) for r in rows] == [("cifar", 3.0), ("inference", 5.0)]


def test_a_gpu_host_runs_the_gpu_sections_and_the_cpu_section_stays_on_the_cpu(bench, monkeypatch):
    assert bench.default_sections(cuda=True, quick=False) == ["inference", "throughput", "feeding", "cifar", "speedrun"]
    assert bench.default_sections(cuda=False, quick=False) == ["cpu"]
    assert bench.default_sections(cuda=True, quick=True) == list(bench.SECTIONS)
    # asked for explicitly on a GPU host, the cpu section's training still runs on the CPU (auto would be CUDA)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench.cpu_training_config("resnet20", bench.SIZES["quick"]["cpu"]).device == "cpu"


def test_the_speedrun_peer_is_required_on_cuda(bench, monkeypatch):
    monkeypatch.setitem(sys.modules, "airbench", None)  # not installed
    with pytest.raises(UsageError, match="speedrun's peer is missing: pip install airbench==0.1.8"):
        bench.speedrun(bench.SIZES["quick"]["speedrun"], torch.device("cuda"), None, Path("unused.png"))


def test_ratio_direction(bench):
    assert bench.row("x", 2.0, 1.0, "images/s")["ratio"] == 2.0
    assert bench.row("x", 2.0, 4.0, "ms", higher_is_better=False)["ratio"] == 2.0
    assert bench.row("x", 1.0, 1.0, "images/s", goal=1.25)["met"] is False


def _gpu_sh(tmp_path, *args, path=None, out="out"):
    """benchmarks/gpu.sh in a subprocess with this interpreter (and `path` first on PATH) writing to
    tmp_path/`out`; that folder."""
    out = tmp_path / out
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["sh", str(ROOT / "benchmarks" / "gpu.sh"), str(out), *args], env=env, capture_output=True, cwd=tmp_path
    )  # from tmp_path: a relative --work is found there, though the script works from the tree's root
    return out, done


def test_gpu_sh_speed_quick_runs_every_gpu_section_in_its_own_process(tmp_path):
    out, done = _gpu_sh(tmp_path, "--part", "speed", "--quick")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = (out / "speed.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["inference", "throughput", "feeding", "cifar", "speedrun"]
    assert all(": ok (" in line and "recompilations 0, cudagraph skips 0" in line for line in lines), lines
    results = json.loads((out / "speed.json").read_text())
    assert {s: v["status"] for s, v in results["sections"].items()} == dict.fromkeys(
        ["inference", "throughput", "feeding", "cifar", "speedrun"], "ok"
    )
    by_section = {r["section"]: r for r in results["rows"]}
    inference = by_section["inference"]  # what was timed as ours, with its measured difference
    assert inference["engine"] in ("torch", "openvino") and inference["precision"] == "fp32"
    assert 0 <= inference["max_difference"] <= 1e-4
    [run] = by_section["speedrun"]["runs"]["ours"]  # one short run of the speedrun recipe, timed and evaluated
    assert run["epochs"] == 0.25 and run["seconds"] > 0 and 0 <= run["accuracy"] <= 1
    assert (out / "speedrun-quick.png").stat().st_size > 0
    assert "| benchmark | ours | peer | ratio |" in done.stdout.decode()
    assert (out / "speed.log").stat().st_size > 0


def test_gpu_sh_evidence_quick_trains_resumes_and_keeps_the_runs_and_reports(tmp_path):
    work = tmp_path / "work"
    partial = work / "runs" / "plain20"  # a run an earlier call left halfway, with its checkpoint
    done = subprocess.run(
        [sys.executable, "-m", "resnet", "train", "--model", "plain20", "--recipe", "cifar-paper", "--data", "embedded",
         "--iters", "4", "--out", str(partial), "--set", "log.diagnostics=true", "--set", "batch_size=16",
         "--set", "log.evals=2", "--stop-after", "2"],
        capture_output=True,
    )  # fmt: skip
    assert done.returncode == 0 and not (partial / "summary.json").exists(), done.stderr.decode()[-2000:]
    out, done = _gpu_sh(tmp_path, "--part", "evidence", "--quick", "--work", "work", "--commit", "abc1234")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    status = (out / "evidence.txt").read_text()
    if shutil.which("nvidia-cuda-mps-control") is None:
        assert "mps: not used (no nvidia-cuda-mps-control here)" in status, status
    assert "evidence: ok (" in status, status
    assert "resnet20: finished\nplain20: finished\n" in status and "2 of 2 runs finished, 2 at a time" in status
    assert "report: ok (" in status and "weights: ok (" in status
    packed = read_metadata(out / "weights" / "resnet20-cifar10.safetensors")  # the ResNet's, as the package ships it
    assert packed["commit"] == "abc1234" and packed["iterations"] == 4 and packed["recipe"] == "cifar-paper"
    assert [p.name for p in (out / "weights").iterdir()] == ["resnet20-cifar10.safetensors"]  # no plain net
    assert "resuming at iteration 2 of 4" in (out / "evidence.log").read_text()  # continued, not started again
    assert [(s["from"], s["step"]) for s in run_folder.sessions(partial)] == [(0, 2), (2, 4)]
    with tarfile.open(out / "evidence.tar.gz") as tar:
        names = tar.getnames()
    assert {"./summary.md", "./report.html", "./runs/plain20/metrics.jsonl", "./runs/resnet20/summary.json"} <= set(
        names
    )
    assert not [n for n in names if n.endswith((".pt", ".safetensors"))]  # checkpoints stay in WORK
    assert (work / "runs" / "resnet20" / "last.pt").exists()

    # again, nothing left to train, on a machine whose MPS daemon does not start: the runs go on without it
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "mps.calls"  # its arguments, or for a command on its input, the command
    fake = tools / "nvidia-cuda-mps-control"
    fake.write_text(f'#!/bin/sh\n{{ [ $# -gt 0 ] && echo "$@" || cat; }} >>{calls}\nexit 1\n')
    fake.chmod(0o755)
    out, done = _gpu_sh(tmp_path, "--part", "evidence", "--quick", "--work", str(work), path=tools, out="again")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    log, status = (out / "evidence.log").read_text(), (out / "evidence.txt").read_text()
    assert "resnet20: finished before, kept" in log and "plain20: finished before, kept" in log
    assert "mps: not used (its daemon did not start or answer: see the log)" in status
    assert calls.read_text().split() == ["quit", "-d", "quit"]  # one left before stopped, started, stopped again
    assert "2 of 2 runs finished" in status and "report: kept (an earlier call wrote it" in status
    assert "weights: ok (" in status and "packed" not in log  # the file packed before is kept, not packed anew
    assert (out / "weights" / "resnet20-cifar10.safetensors").is_file()

    (work / "summary.md").unlink()  # a report not written yet, and a cap spent: the next call writes it
    out, done = _gpu_sh(tmp_path, "--part", "evidence", "--quick", "--work", str(work), "--cap", "10", out="late")
    status = (out / "evidence.txt").read_text()
    assert done.returncode == 0 and "report: not run, the cap is spent" in status, status


def test_gpu_sh_refuses_a_bad_part_and_names_missing_data(tmp_path):
    _, done = _gpu_sh(tmp_path, "--part", "sped")
    assert done.returncode == 2 and "--part speed or --part evidence, not 'sped'" in done.stderr.decode()
    if not (ROOT / ".bench" / "cifar10-jpeg.tar.gz").exists():  # a GPU run without its carried data
        out, done = _gpu_sh(tmp_path, "--part", "evidence")
        assert done.returncode == 1 and "cifar10-jpeg.tar.gz is missing" in (out / "evidence.txt").read_text()
