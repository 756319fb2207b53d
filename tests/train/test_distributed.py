"""torchrun with 2 gloo processes on CPU: each process takes its slice of the global batch."""

import socket
import subprocess
import sys

import pytest
import torch

from resnet import checkpoint

# Frozen BN normalizes with running statistics, so each image's output does not depend on which process
# holds the rest of its batch: two processes must then compute what one does. In fp32: bf16 rounds
# otherwise for a half batch than for a whole one.
ARGS = [
    "--set",
    "precision=fp32",
    "--iters",
    "6",
    "--set",
    "batch_size=32",
    "--set",
    "freeze_bn=true",
    "--set",
    "optimizer.lr=0.002",
    "--set",
    "log.evals=2",
    "--set",
    "data.workers=0",
    "--device",
    "cpu",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(n: int, *args):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={n}",
        f"--master-port={_free_port()}",
        "-m",
        "resnet",
        "train",
        *map(str, args),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _single(*args):
    return subprocess.run(
        [sys.executable, "-m", "resnet", "train", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def _close(a, b):
    return all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


@pytest.fixture(scope="module")
def one(image_folder, tmp_path_factory):
    """The run of ARGS in one process that the runs on two must end as (do not modify: shared)."""
    out = tmp_path_factory.mktemp("one")
    done = _single("--data", image_folder, "--out", out, *ARGS)
    assert done.returncode == 0, done.stderr
    return out


def test_two_processes_give_the_weights_of_one(image_folder, one, tmp_path):
    two = _torchrun(2, "--data", image_folder, "--out", tmp_path / "two", *ARGS)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = checkpoint.load(one / "last.pt"), checkpoint.load(tmp_path / "two" / "last.pt")
    assert _close(a["model"], b["model"])
    # only rank 0 writes and reports
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2
    assert two.stdout.count("final test accuracy") == 1
    assert b["config"]["batch_size"] == 32


def test_a_checkpoint_resumes_on_another_number_of_processes(image_folder, one, tmp_path):
    paused = _torchrun(2, "--data", image_folder, "--out", tmp_path / "run", *ARGS, "--stop-after", "3")
    assert paused.returncode == 0, paused.stderr[-2000:]
    assert checkpoint.load(tmp_path / "run" / "last.pt")["step"] == 3
    resumed = _single("--resume", "--out", tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr
    a, b = checkpoint.load(one / "last.pt"), checkpoint.load(tmp_path / "run" / "last.pt")
    assert b["step"] == 6 and _close(a["model"], b["model"])


def test_a_signal_to_every_process_stops_all_at_the_same_step(image_folder, tmp_path):
    # As Slurm's srun does: the signal reaches each process, at slightly different moments
    import os
    import re
    import signal
    import time

    out = tmp_path / "run"
    args = [a if a != "6" else "2000" for a in ARGS] + ["--set", "log.checkpoint_every=2"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={_free_port()}"]
    launcher = subprocess.Popen(
        [*command, "-m", "resnet", "train", "--data", image_folder, "--out", out, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (out / "last.pt").exists():
        assert launcher.poll() is None, launcher.stderr.read()
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    for i, pid in enumerate(workers):
        os.kill(int(pid), signal.SIGTERM)
        time.sleep(0.3 * i)  # rank 1 hears of it later: the ranks must still agree on the step
    _, err = launcher.communicate(timeout=120)  # no rank hangs waiting for the other
    assert launcher.returncode != 0
    step = checkpoint.load(out / "last.pt")["step"]
    stopped = re.findall(r"stopped by SIGTERM at step (\d+) of 2000", err)
    assert stopped == [str(step), str(step)] and step % 10 == 0  # both ranks, at one agreed sync step
