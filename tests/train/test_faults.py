"""A run survives being killed: SIGKILL at a random moment, then --resume, ends bit-for-bit where an
uninterrupted run ends. It stops cleanly on request: SIGTERM, SIGINT or SIGUSR1 finish the step, write
a checkpoint and exit 128 + the signal; --time-limit stops before the limit (exit 75). Two runs cannot
write one folder; a killed run's lock does not block the next. A real full disk (a small tmpfs, as
root) is one line, the last checkpoint intact."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet import checkpoint
from resnet.cli import main
from resnet.train.stop import parse_duration

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


@pytest.fixture(scope="module")
def straight(image_folder, tmp_path_factory):
    """The uninterrupted run of ARGS that every interrupted one must end as (do not modify: shared)."""
    out = tmp_path_factory.mktemp("straight")
    assert _train("--data", image_folder, "--out", out, *ARGS).wait() == 0
    return out


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_weights(image_folder, straight, tmp_path):
    killed = tmp_path / "killed"

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


def _wait_for_training(process: subprocess.Popen, out: Path) -> None:
    while not (out / "last.pt").exists():  # checkpoint_every=3: training has begun
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_the_resumed_run_is_the_same(
    image_folder, straight, tmp_path, sig
):
    stopped = tmp_path / "stopped"
    process = _train("--data", image_folder, "--out", stopped, *ARGS)
    _wait_for_training(process, stopped)
    process.send_signal(sig)
    _, err = process.communicate()
    assert process.returncode == 128 + sig, err
    step = checkpoint.load(stopped / "last.pt")["step"]
    lines = err.strip().splitlines()
    assert lines[-1] == (
        f"resnet train: stopped by {sig.name} at step {step} of 48, with a checkpoint; "
        f"resume with: resnet train --out {stopped} --resume"
    )
    assert "Traceback" not in err and 0 < step < 48
    if sig != signal.SIGTERM:
        return  # what follows does not depend on the signal: resuming is checked once
    resumed = _train("--resume", "--out", stopped)
    assert resumed.wait() == 0, resumed.stderr.read()
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(stopped / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _rows(straight / "metrics.jsonl") == _rows(stopped / "metrics.jsonl")


def test_a_second_signal_stops_at_once(image_folder, tmp_path):
    out = tmp_path / "run"
    # resnet110 on a batch of all 120 images: a step takes about a second, so both signals land in one;
    # a checkpoint after every step: the signals come after the first, not the third
    slow = {"batch_size=16": "batch_size=120", "log.checkpoint_every=3": "log.checkpoint_every=1"}
    args = [slow.get(a, a) for a in ARGS]
    process = _train("--data", image_folder, "--out", out, "--model", "resnet110", *args)
    _wait_for_training(process, out)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait() == -signal.SIGTERM  # killed by the second one, not stopped by the first


def test_the_time_limit_stops_with_a_checkpoint_before_it(image_folder, tmp_path):
    out = tmp_path / "run"
    args = [a if a != "48" else "100000" for a in ARGS]
    start = time.monotonic()
    process = _train("--data", image_folder, "--out", out, *args, "--time-limit", "6s")
    _, err = process.communicate()
    took = time.monotonic() - start
    assert process.returncode == 75, err
    step = checkpoint.load(out / "last.pt")["step"]
    assert 0 < step < 100000 and f"stopped by the time limit at step {step} of 100000" in err
    assert took < 6 + 15  # the limit counts from the start of training: start-up time comes on top


@pytest.mark.parametrize("text, seconds", [("90m", 5400), ("2h30m", 9000), ("45s", 45), ("1d", 86400), ("30", 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_time_limit_is_a_usage_error(image_folder, tmp_path, capsys):
    # in this process: refused before any training starts
    code = main(["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), *ARGS, "--time-limit", "soon"])
    err = capsys.readouterr().err
    assert code == 2 and "--time-limit: 'soon' is not a duration" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_second_run_into_the_same_folder_is_refused_and_a_killed_runs_lock_is_not(image_folder, tmp_path):
    out = tmp_path / "run"
    args = [a if a != "48" else "100000" for a in ARGS]  # still training when the second starts, on any CPU
    first = _train("--data", image_folder, "--out", out, *args)
    _wait_for_training(first, out)
    second = _train("--resume", "--out", out)
    _, err = second.communicate()
    assert second.returncode == 2 and f"{out} is in use by another run (pid {first.pid}" in err
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (out / ".lock").exists()  # left behind by the killed run ...
    resumed = _train("--resume", "--out", out, "--stop-after", "2")  # ... and it blocks nothing
    assert resumed.wait() == 0, resumed.stderr.read()


def test_checkpoints_every_few_minutes_of_wall_clock(image_folder, tmp_path):
    out = tmp_path / "run"
    args = [a if a != "log.checkpoint_every=3" else "log.checkpoint_minutes=0.0001" for a in ARGS]
    process = _train("--data", image_folder, "--out", out, *args)
    _wait_for_training(process, out)
    first = checkpoint.load(out / "last.pt")["step"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < first < 12  # the first evaluation is at step 12: this checkpoint came from the clock


def test_a_full_disk_is_one_line_and_leaves_the_last_checkpoint(image_folder, tmpfs):
    out = tmpfs("3m") / "run"  # resnet20's checkpoint is 2.2 MB: the first fits, a second beside it does not
    process = _train("--data", image_folder, "--out", out, *ARGS)
    _, err = process.communicate()
    assert process.returncode == 1, err
    assert err.strip().splitlines()[-1] == (
        f"resnet train: stopped: {out / 'last.pt'}: disk full while writing; the previous checkpoint is intact"
    )
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".last")) == []  # no temporary file
    assert checkpoint.load(out / "last.pt")["step"] == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_unreadable_mid_run_stops_it_with_a_checkpoint_and_one_line(tmp_path, capsys, monkeypatch, workers):
    from datasets import make_image_folder

    from resnet.data import loader
    from resnet.errors import UsageError

    root = make_image_folder(tmp_path / "data", {"train": 4, "test": 2}, size=(40, 30))  # 12 images: 3 steps of 4
    read = loader._FileDataset.__getitem__

    def breaks_in_the_second_epoch(self, key):  # as a file whose disk fails while the run goes on
        if self.train and key[0] >= 1:
            raise UsageError(f"{self.files.files[key[1]][0]}: unreadable image (broken data stream)")
        return read(self, key)

    monkeypatch.setattr(loader._FileDataset, "__getitem__", breaks_in_the_second_epoch)  # the workers fork with it
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--out", str(out), "--iters", "12", "--device", "cpu"]
    settings = ("batch_size=4", "precision=fp32", "data.mode=stream", "data.image_size=24", f"data.workers={workers}")
    for setting in settings:
        args += ["--set", setting]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("resnet train: error: train/")
    assert ".png: unreadable image (broken data stream); " in err[0]
    assert "stopped at step 3 with a checkpoint" in err[0] and f"resnet train --out {out} --resume" in err[0]
    assert checkpoint.load(out / "last.pt")["step"] == 3


def test_skip_bad_images_leaves_unreadable_streamed_files_out_and_lists_them(tmp_path, capsys):
    from datasets import make_image_folder

    root = make_image_folder(tmp_path / "data", {"train": 4, "test": 2}, size=(40, 30))
    bad = [sorted((root / split).rglob("*.png"))[1] for split in ("train", "test")]
    for image in bad:
        image.write_bytes(b"not a png")
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--out", str(out), "--iters", "6", "--device", "cpu"]
    for setting in ("batch_size=4", "precision=fp32", "data.mode=stream", "data.image_size=24", "data.workers=0"):
        args += ["--set", setting]
    assert main(args) == 2 and "not an image" in capsys.readouterr().err  # without the option: stopped, named
    assert main([*args, "--skip-bad-images", "--stop-after", "3", "--force"]) == 0
    listed = (out / "skipped-images.txt").read_text().splitlines()
    assert listed == [str(bad[0])]  # the training file, met in the first epoch (steps 1-3); no evaluation yet
    assert main(["train", "--out", str(out), "--resume"]) == 0  # a later session keeps it and adds the test file
    assert (out / "skipped-images.txt").read_text().splitlines() == sorted(map(str, bad))
    assert json.loads((out / "summary.json").read_text())["skipped_images"] == 2
