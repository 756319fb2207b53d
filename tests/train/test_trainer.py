import json
import os
import re
import sys
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from datasets import QUICK

from resnet import RunError, UsageError, checkpoint, train
from resnet.data import augment, loader, mixing
from resnet.data.loader import TensorLoader
from resnet.train import loss


def _weights(out):
    return checkpoint.load(out / "last.pt")["model"]


def test_the_run_folder(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "curves.png", "summary.json"} <= names
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["lr"] == pytest.approx(0.001)  # divided by 10 at 50% and 75% of the run
    # three color classes are learnt: far better than chance (67% error)
    assert rows[-1]["test_error"] < 0.35 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["final"]["test_error"] == rows[-1]["test_error"]
    state = checkpoint.load(trained_run / "best.pt")
    assert state["classes"] == ["blue", "green", "red"] and state["model_name"] == "resnet20"
    assert state["config"]["batch_size"] == 16


def test_same_seed_same_weights_bit_for_bit(image_folder, tmp_path):
    for name in ("a", "b"):
        train("resnet20", str(image_folder), "cifar-paper", tmp_path / name, QUICK, iters=6, progress=False)
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "c", {**QUICK, "seed": 1}, iters=6, progress=False)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# the moving average (updated every 4 steps: the checkpoint at 6 falls between two), LAMB and the lighting
# noise keep state or draw at random: each must be checkpointed or be a function of the step
NEW_STATE = {
    "ema.decay": 0.9,
    "ema.every": 4,
    "optimizer.name": "lamb",
    "optimizer.lr": 0.01,
    "data.lighting": 0.1,
    "log.every": 6,  # evaluating twice (the average and the trained weights) would stretch the interval past 6
}


@pytest.mark.parametrize("options", [{}, NEW_STATE], ids=["sgd", "ema-lamb-lighting"])
def test_resume_continues_exactly(image_folder, tmp_path, monkeypatch, options):
    if "optimizer.name" in options:
        pytest.importorskip("pytorch_optimizer", reason="LAMB's package, of the lamb and test extras")
    settings = {**QUICK, "log.evals": 4, **options}
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "straight", settings, iters=12, progress=False)

    batch = TensorLoader.batch

    def interrupted(self, step):
        if step == 7:
            raise KeyboardInterrupt
        return batch(self, step)

    monkeypatch.setattr(TensorLoader, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train("resnet20", str(image_folder), "cifar-paper", tmp_path / "resumed", settings, iters=12, progress=False)
    assert checkpoint.load(tmp_path / "resumed" / "last.pt")["step"] == 6
    monkeypatch.undo()
    train(out=tmp_path / "resumed", resume=True, progress=False)

    straight, resumed = (checkpoint.load(tmp_path / name / "last.pt") for name in ("straight", "resumed"))
    for key in ("model", "trained_model") if options else ("model",):
        assert all(torch.equal(straight[key][k], resumed[key][k]) for k in straight[key])

    def rows(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in ("images_per_s", "elapsed_s")} for line in lines]

    assert rows("resumed") == rows("straight")


def test_an_existing_run_is_not_overwritten(trained_run):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir() if p.is_file()}
    with pytest.raises(UsageError, match="already holds a run: --resume continues it, --force replaces it"):
        train("resnet20", None, "cifar-paper", trained_run, QUICK, iters=2, progress=False)
    assert before == {p.name: p.read_bytes() for p in trained_run.iterdir() if p.is_file()}


def test_resume_with_another_model_is_refused(trained_run):
    with pytest.raises(UsageError, match="is a checkpoint of resnet20, not resnet32"):
        train("resnet32", out=trained_run, resume=True, progress=False)


def _poison_step(monkeypatch, bad_step):
    batch = TensorLoader.batch

    def poisoned(self, step):
        x, y = batch(self, step)
        return (x * float("nan"), y) if step == bad_step else (x, y)

    monkeypatch.setattr(TensorLoader, "batch", poisoned)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(image_folder, tmp_path, monkeypatch):
    _poison_step(monkeypatch, 13)  # the 14th step
    with pytest.raises(RunError, match="the loss is not finite at step 14; stopped"):
        train(
            "resnet20", str(image_folder), "cifar-paper", tmp_path, {**QUICK, "log.every": 5}, iters=30, progress=False
        )
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["step"] == 10 and all(v.isfinite().all() for v in state["model"].values() if v.is_floating_point())


def test_nan_steps_can_be_skipped(image_folder, tmp_path, monkeypatch):
    _poison_step(monkeypatch, 3)
    train(
        "resnet20", str(image_folder), "cifar-paper", tmp_path, {**QUICK, "nonfinite": "skip"}, iters=9, progress=False
    )
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["skipped_steps"] == 1
    assert all(v.isfinite().all() for v in state["model"].values() if v.is_floating_point())


def test_epochs_set_the_length(image_folder, tmp_path):
    result = train("resnet20", str(image_folder), "fast", tmp_path, QUICK, epochs=1, progress=False)
    assert result.steps == 120 // 16  # one pass over the 120 training images, whole batches


def test_validation_split_selects_the_best(image_folder, tmp_path):
    train(
        "resnet20", str(image_folder), "cifar-paper", tmp_path, {**QUICK, "data.val_size": 15}, iters=6, progress=False
    )
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val_error" in row and "test_error" in row
    assert checkpoint.load(tmp_path / "best.pt")["schedule"]["best_eval"] == min(
        json.loads(line)["val_error"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    )


def test_tensorboard_logs_every_evaluation(image_folder, tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="the optional tensorboard package"
    )
    train(
        "resnet20",
        str(image_folder),
        "cifar-paper",
        tmp_path,
        {**QUICK, "log.tensorboard": True, "log.eval_share": 1.0},  # every 2 of the 6 steps, unbounded
        iters=6,
        progress=False,
    )
    events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("test_error")] == [2, 4, 6]


def test_tensorboard_missing_is_one_clear_error_before_the_run(image_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it fails
    with pytest.raises(UsageError, match="needs the tensorboard package"):
        train(
            "resnet20",
            str(image_folder),
            "cifar-paper",
            tmp_path / "run",
            {**QUICK, "log.tensorboard": True},
            iters=2,
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def _steps(out):
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_diagnostics_are_measured_on_batches_of_the_size_asked_for(image_folder, tmp_path, monkeypatch):
    from resnet.train import logs

    seen = []
    for name in ("gradient_norms", "layer_responses"):
        real = getattr(logs, name)
        monkeypatch.setattr(logs, name, lambda model, x, *rest, real=real: seen.append(len(x)) or real(model, x, *rest))
    settings = {**QUICK, "log.diagnostics": True, "log.diagnostics_batch": 8, "log.every": 2}
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "a", settings, iters=4, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "diagnostics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4] and seen == [8] * 6  # at the start and at each evaluation
    # resnet20: 20 weighted layers (19 convolutions, all 3×3 with option A shortcuts, and fc)
    assert all(len(r["gradient_norms"]) == 20 and len(r["response_std"]) == 19 for r in rows)


def test_evaluation_stays_a_bounded_share_of_a_short_run(image_folder, tmp_path):
    # 30 test images at a third of a training image's cost, batches of 16: at most 10% of the work
    # allows one evaluation per ceil(30 / 3 * 0.9 / (0.1 * 16)) = 6 iterations, not the 12 asked for
    settings = {**QUICK, "log.evals": 12}
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "a", settings, iters=12, progress=False)
    assert _steps(tmp_path / "a") == [6, 12]
    unbounded = {**settings, "log.eval_share": 1.0}
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "b", unbounded, iters=12, progress=False)
    assert _steps(tmp_path / "b") == list(range(1, 13))
    explicit = {**settings, "log.every": 4}  # an explicit interval is kept
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "c", explicit, iters=12, progress=False)
    assert _steps(tmp_path / "c") == [4, 8, 12]
    near_the_end = {**settings, "log.every": 5}  # 10 is within half an interval of the end at 12
    train("resnet20", str(image_folder), "cifar-paper", tmp_path / "d", near_the_end, iters=12, progress=False)
    assert _steps(tmp_path / "d") == [5, 12]


def test_the_full_paper_schedule_keeps_its_evaluation_every_1000_iterations():
    from resnet.config import resolve
    from resnet.train.schedule import eval_interval

    # CIFAR-10's 10,000 test images: the least interval is ceil(10000 / 3 * 0.9 / (0.1 * 128)) = 235
    log = resolve("cifar-paper").log
    assert eval_interval(log, 64000, 128, 10000) == 1000
    assert eval_interval(log, 200, 128, 10000) == 235  # beyond 200: --iters 200 evaluates once, at the end
    assert eval_interval(log, 64000, 128, 20000) == 1000  # two splits evaluated: twice the cost
    assert eval_interval(log, 4000, 128, 20000) == 469


def _fake_clock(monkeypatch, *modules):
    """A clock for `modules`' time.perf_counter that moves only when the test moves it: [seconds]."""
    clock = [0.0]
    fake = SimpleNamespace(perf_counter=lambda: clock[0], monotonic=time.monotonic)
    for module in modules:
        monkeypatch.setattr(module, "time", fake)
    return clock


def test_a_run_says_what_it_will_do_and_how_long_it_will_take(image_folder, tmp_path, monkeypatch, capsys):
    """On a clock where the first step takes 5 s, each later one 1 s and each evaluation 3 s, the
    forecast (after step 4's evaluation) and each ETA equal the time the rest of the run then takes."""
    from resnet.train import progress, trainer

    monkeypatch.setattr(trainer, "FORECAST_STEPS", 4)
    monkeypatch.setattr(progress, "LONG_RUN", 0)  # every run counts as long: the advice is shown
    clock = _fake_clock(monkeypatch, progress, trainer)
    step, checkpoint_, log = trainer.Trainer.train_step, trainer.Trainer._checkpoint, progress.Progress.log

    def timed_step(self, *args):
        step(self, *args)
        clock[0] += 5 if self.step == 0 else 1

    def timed_evaluation(self, improved):  # the last part of an evaluation
        checkpoint_(self, improved)
        clock[0] += 3

    logged = []  # (the clock, the line)
    monkeypatch.setattr(trainer.Trainer, "train_step", timed_step)
    monkeypatch.setattr(trainer.Trainer, "_checkpoint", timed_evaluation)
    monkeypatch.setattr(progress.Progress, "log", lambda bar, text: logged.append((clock[0], text)) or log(bar, text))
    settings = {**QUICK, "precision": "fp32", "log.eval_share": 1.0}
    train("resnet20", str(image_folder), "cifar-paper", tmp_path, settings, iters=12, force=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"resnet20, cifar-paper: 12 iterations of batch 16 ({12 / (120 // 16):.3g} epochs of 120 images), "
        "evaluating every 4 on test; "
        f"cpu, fp32, channels_last; run folder {tmp_path}"
    )
    assert re.search(r"^step 4/12 .* · ETA 14s$", lines[1])  # 8 steps and 2 evaluations
    forecast = lines[2]
    assert re.fullmatch(
        r"1 s per iteration: about 14s to go on this cpu\. Ctrl-C stops .*--recipe fast make it shorter", forecast
    )
    assert re.search(r"^step 8/12 .* · ETA 7s$", lines[3])
    end = next(time for time, line in logged if line.startswith("step 12/12"))
    for time_, line in logged:  # each forecast equals what the rest of the run took
        if left := re.search(r"(?:ETA|about) (\d+)s", line):
            assert int(left[1]) == end - time_, line
    assert "ETA" not in lines[4]  # none at the end


def test_before_an_evaluation_is_timed_its_cost_is_estimated_in_training_steps(monkeypatch):
    from resnet.train import progress

    clock = _fake_clock(monkeypatch, progress)
    bar = progress.Progress(100, enabled=False, eval_steps=2.5)
    clock[0] = 5.0  # the first step, with its one-time costs
    bar.warm(1)
    clock[0] += 19 * 2.0  # 19 steps of 2 s
    assert bar.remaining(20, 100, 4) == 80 * 2.0 + 4 * 2.5 * 2.0
    clock[0] += 3.0
    bar.evaluated(3.0)  # an evaluation timed: its cost, not the estimate; the pace stays that of the steps
    assert bar.remaining(20, 100, 4) == 80 * 2.0 + 4 * 3.0


def _count_calls(monkeypatch, module, name: str, calls: Counter) -> None:
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_mixup_cutmix_erasing_and_bce_train_and_resume_exactly(image_folder, tmp_path, monkeypatch):
    calls = Counter()
    for module, name in ((loader, "random_erase"), (mixing, "cutmix_box"), (loss, "binary_cross_entropy")):
        _count_calls(monkeypatch, module, name, calls)
    settings = {
        **QUICK,
        "log.evals": 1,
        "data.mixup": 0.4,
        "data.cutmix": 1.0,
        "data.random_erase": 0.5,
        "loss": "bce",
        "bce_threshold": 0.2,
        "label_smoothing": 0.1,
    }
    run = ("resnet20", str(image_folder), "cifar-paper")
    train(*run, tmp_path / "straight", settings, iters=4, progress=False)
    assert calls["random_erase"] == 4 and calls["binary_cross_entropy"] == 4
    assert 0 < calls["cutmix_box"] < 4  # each batch mixed by cutmix or (the others) mixup
    paused = train(*run, tmp_path / "resumed", settings, iters=4, stop_after=2, progress=False)
    assert not paused.finished
    train(out=tmp_path / "resumed", resume=True, progress=False)
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.parametrize("mode", ["tensor", "stream"])
def test_randaugment_trains_in_either_mode(image_folder, tmp_path, monkeypatch, policies, mode):
    calls = Counter()
    _count_calls(monkeypatch, augment, "apply_policy", calls)
    settings = {**QUICK, "log.evals": 1, "data.mode": mode, "data.auto_augment": "randaugment"}
    train("resnet20", str(image_folder), "cifar-paper", tmp_path, settings, iters=2, progress=False)
    assert calls["apply_policy"] == (2 if mode == "tensor" else 2 * 16)  # a call per batch, or per image


def test_deterministic_runs_train_under_torchs_deterministic_mode_with_cublas_configured(image_folder, tmp_path):
    # every model's global pooling has a deterministic backward now (the adaptive pools' CUDA one has none)
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    try:
        train("resnet20", str(image_folder), "cifar-paper", tmp_path / "a", {**QUICK, "deterministic": True}, iters=2)
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # read by cuBLAS when CUDA first uses it
    finally:
        torch.use_deterministic_algorithms(False)
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
