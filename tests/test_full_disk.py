"""A real full disk (a small tmpfs the test mounts; it needs root, as CI has, and is skipped otherwise):
every command that writes files says so in one line, exits 1, leaves no temporary file and leaves what
was there before untouched."""

import subprocess
import sys

import pytest


@pytest.fixture
def full_disk(tmpfs):
    disk = tmpfs("2m")
    (disk / "before.txt").write_text("kept")
    with open(disk / "filler", "wb", buffering=0) as f:  # filled to the last byte
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return disk


def _resnet(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet", *map(str, args)], capture_output=True, text=True)


def _left(disk) -> list[str]:
    return sorted(p.name for p in disk.rglob("*") if p.is_file())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors", "openvino"])
def test_export_on_a_full_disk(trained_run, full_disk, fmt):
    pytest.importorskip({"onnx": "onnxruntime", "openvino": "openvino"}.get(fmt, "torch"))
    out = full_disk / f"model.{fmt}"
    done = _resnet("export", trained_run / "best.pt", "--format", fmt, "--out", out)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"resnet export: stopped: {out}: disk full while writing; nothing was written"
    assert _left(full_disk) == ["before.txt", "filler"]


def test_eval_report_on_a_full_disk(trained_run, full_disk):
    report = full_disk / "eval"
    done = _resnet("eval", trained_run / "best.pt", "--out", report, "--device", "cpu", "--engine", "torch")
    assert done.returncode == 1, done.stderr
    assert "disk full while writing; nothing was changed" in done.stderr and "Traceback" not in done.stderr
    assert _left(full_disk) == ["before.txt", "filler"]


def test_features_on_a_full_disk(trained_run, image_folder, full_disk):
    out = full_disk / "features.npy"
    done = _resnet("features", trained_run / "best.pt", "--data", image_folder, "--out", out, "--device", "cpu")
    assert done.returncode == 1, done.stderr
    assert "disk full while writing; nothing was changed" in done.stderr and "Traceback" not in done.stderr
    assert _left(full_disk) == ["before.txt", "filler"]


def test_a_reproduction_report_on_a_full_disk(full_disk):
    from resnet.analysis.report import Finding, Report
    from resnet.errors import RunError

    report = Report("t", "intro", findings=[Finding(True, "it holds")])
    with pytest.raises(RunError, match="disk full while writing; nothing was changed"):
        report.write(full_disk / "report")
    assert _left(full_disk) == ["before.txt", "filler"]
