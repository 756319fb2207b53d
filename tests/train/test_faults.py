"""A run survives being killed: SIGKILL at a random moment, then --resume, ends bit-for-bit where an
uninterrupted run ends."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import torch

from resnet import checkpoint

ARGS = [
    "--iters",
    "48",
    "--set",
    "batch_size=16",
    "--set",
    "log.evals=4",
    "--set",
    "log.checkpoint_every=3",
    "--set",
    "data.workers=0",
    "--device",
    "cpu",
]


def _train(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "resnet", "train", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _rows(path):
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("images_per_s", "elapsed_s")}
        for line in path.read_text().splitlines()
    ]


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_weights(image_folder, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _train("--data", image_folder, "--out", straight, *ARGS).wait() == 0

    process = _train("--data", image_folder, "--out", killed, *ARGS)
    while not (killed / "last.pt").exists():
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.02)
    delay = random.uniform(0, 1.5)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, f"the run ended before the kill {delay:.2f} s in"
    stopped_at = checkpoint.load(killed / "last.pt")["step"]
    assert 0 < stopped_at < 48

    resumed = _train("--resume", "--out", killed)
    assert resumed.wait() == 0, resumed.stderr.read()
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(killed / "last.pt")
    assert a["step"] == b["step"] == 48
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), f"killed at step {stopped_at}"
    momentum = [
        (a["optimizer"]["state"][i]["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
        for i in a["optimizer"]["state"]
    ]
    assert all(torch.equal(x, y) for x, y in momentum)
    assert _rows(straight / "metrics.jsonl") == _rows(killed / "metrics.jsonl")


def test_pause_and_resume(image_folder, tmp_path):
    out = tmp_path / "run"
    paused = _train("--data", image_folder, "--out", out, *ARGS, "--stop-after", "10")
    stdout, _ = paused.communicate()
    assert paused.returncode == 0 and stdout.strip().splitlines()[-1].startswith("paused at iteration 10:")
    assert checkpoint.load(out / "last.pt")["step"] == 10 and not (out / "summary.json").exists()
    resumed = _train("--resume", "--out", out)
    stdout, _ = resumed.communicate()
    assert resumed.returncode == 0 and "final test accuracy" in stdout.strip().splitlines()[-1]
    assert (out / "summary.json").exists()
