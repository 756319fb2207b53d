import html
import json
import re
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from resnet import UsageError, checkpoint
from resnet.analysis import degradation, driver, shattered_gradients, shortcuts
from resnet.analysis.report import Finding, Table
from resnet.data.loader import TensorLoader
from resnet.errors import Stopped
from resnet.train import api

# log.eval_share=1: evaluations every 2 of the 4 steps, which the 10% bound on evaluation would stretch to one;
# batches of 32, not the recipe's 128, and three of the ten classes: what these tests check does not depend on the
# batch or the classes, and steps cost a quarter, loading and evaluating a third
FAST = dict(
    quick=True,
    iters=4,
    progress=False,
    overrides={"log.evals": 2, "log.eval_share": 1.0, "batch_size": 32, "data.classes": ["cat", "ship", "truck"]},
)


def _final(folder, key):
    """The mean of `key` over a run's last three evaluations, in %, read from its metrics.jsonl."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return 100 * np.mean([r[key] for r in rows if r.get(key) is not None][-3:])


def _finished_run(folder, train_error, test_error):
    """A run folder as a finished training leaves it, with these errors (fractions) at its evaluations."""
    folder.mkdir(parents=True)
    rows = [{"step": 100 * i, "train_error": train_error, "test_error": test_error} for i in (1, 2, 3)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text("{}")


@pytest.fixture(scope="module")
def two_depths(tmp_path_factory):
    """A quick degradation reproduction at depths 20 and 32 (do not modify: shared)."""
    out = tmp_path_factory.mktemp("degradation")
    return out, degradation([20, 32], out=out, **FAST)


def test_degradation_report(two_depths):
    out, r = two_depths
    assert {p.name for p in (out / "runs").iterdir()} == {"plain20", "resnet20", "plain32", "resnet32"}
    page = r.html.read_text()
    assert page.count("data:image/png;base64,") == 3 and not re.search(r"src=['\"](?!data:)", page)
    summary = r.summary.read_text()
    assert "| 20 | 0.27M |" in summary and "Table 6" in summary and "8.75" in summary
    assert "resnet train --model plain20" in summary and "torch" in summary
    for figure in ("fig6_training_curves.png", "fig7_layer_responses.png", "gradient_flow.png"):
        assert (out / "figures" / figure).stat().st_size > 10_000


def test_a_quick_reproduction_says_it_proves_nothing_and_names_its_data(two_depths):
    out, r = two_depths
    summary = r.summary.read_text()
    assert driver.QUICK_NOTE in summary and html.escape(driver.QUICK_NOTE) in r.html.read_text()
    assert "These networks trained on the embedded 5,000-image subset" in summary


def test_findings_state_the_numbers(two_depths):
    out, r = two_depths
    runs = out / "runs"
    deeper_trains_worse = _final(runs / "plain32", "train_error") > _final(runs / "plain20", "train_error")
    plain = r.findings[0]
    assert plain.holds == deeper_trains_worse
    assert re.fullmatch(
        r"the deeper plain net has the higher training error: plain-32 \d+\.\d\d% against plain-20 \d+\.\d\d%",
        plain.statement,
    )
    findings = r.summary.read_text().split("## Findings")[1].split("##")[0]
    assert plain.line() in findings and plain.line().startswith("- ✅" if deeper_trains_worse else "- ❌")
    assert findings.count("ResNet responses are smaller") == 2


@pytest.mark.parametrize("plain32_train_error, holds", [(0.40, True), (0.20, False)])
def test_a_finding_holds_only_when_the_numbers_say_so(tmp_path, plain32_train_error, holds):
    for label, train_error in (
        ("plain20", 0.30),
        ("plain32", plain32_train_error),
        ("resnet20", 0.2),
        ("resnet32", 0.1),
    ):
        _finished_run(tmp_path / "runs" / label, train_error, train_error + 0.05)
    r = degradation([20, 32], out=tmp_path, **FAST)
    assert r.findings[0].holds is holds
    verdict = "✅ reproduced" if holds else "❌ not reproduced"
    expected = (
        f"- {verdict}: the deeper plain net has the higher training error: "
        f"plain-32 {100 * plain32_train_error:.2f}% against plain-20 30.00%"
    )
    assert expected in r.summary.read_text().splitlines()
    assert r.findings[1].holds  # ResNet-32 15% against ResNet-20 25% test error


def test_a_killed_reproduction_resumes(tmp_path, monkeypatch):
    batch, calls = TensorLoader.batch, []

    def killed_in_the_second_model(self, step):
        calls.append(step)
        if len(calls) == 7:  # the first model takes 4 steps; the second dies at its third
            raise KeyboardInterrupt
        return batch(self, step)

    monkeypatch.setattr(TensorLoader, "batch", killed_in_the_second_model)
    with pytest.raises(KeyboardInterrupt):
        degradation([20], out=tmp_path, **FAST)
    assert (tmp_path / "runs" / "plain20" / "summary.json").exists()
    assert checkpoint.load(tmp_path / "runs" / "resnet20" / "last.pt")["step"] == 2  # evaluated every 2 steps
    monkeypatch.setattr(TensorLoader, "batch", batch)

    resumed = []

    class Recorded(api.Trainer):
        def __init__(self, config, out, state=None, progress=True):
            resumed.append(state is not None)
            super().__init__(config, out, state, progress)

    monkeypatch.setattr(api, "Trainer", Recorded)
    degradation([20], out=tmp_path, **FAST)
    assert resumed == [True]  # plain20 kept, resnet20 resumed
    assert checkpoint.load(tmp_path / "runs" / "resnet20" / "last.pt")["step"] == 4


def test_other_settings_in_the_same_folder_are_refused(two_depths):
    out, _ = two_depths  # refused before its first model trains: the shared folder is left as it was
    with pytest.raises(UsageError, match="holds a run with other settings .iters"):
        degradation([20], out=out, **{**FAST, "iters": 5})


def test_reproductions_given_one_networks_folder_train_a_network_once(two_depths, tmp_path, monkeypatch):
    networks = two_depths[0] / "runs"  # plain20 and resnet20, trained by the degradation reproduction
    monkeypatch.setattr(api, "Trainer", lambda *a, **k: pytest.fail("trained again"))
    r = shattered_gradients([20], out=tmp_path / "b", networks=networks, **FAST)
    assert (
        not (tmp_path / "b" / "runs").exists()
        and (tmp_path / "b" / "gradients" / "resnet20-trained-balanced.json").exists()
    )
    assert f"--out {networks / 'resnet20'}" in r.summary.read_text()
    cosine = {**FAST, "overrides": {**FAST["overrides"], "schedule.name": "cosine"}}
    with pytest.raises(UsageError, match=r"holds a run with other settings \(schedule.name: step there, cosine now"):
        shattered_gradients([20], out=tmp_path / "c", networks=networks, **cosine)


def test_the_cpu_presets_of_lesion_gradients_and_landscape_train_the_same_56_layer_networks(tmp_path):
    from resnet.analysis.experiments import Gradients, Landscape, Lesion

    configs = []
    for experiment in (Lesion, Gradients, Landscape):
        preset = experiment.presets["cpu"]
        s = driver.complete(driver.Settings(out=tmp_path, data="cifar10-jpeg.tar.gz"), [preset], experiment.diagnostics)
        jobs = {job.label: job for job in experiment(s, **preset.sizes).jobs()}
        configs.append({label: _settings(driver.job_config(jobs[label], s)) for label in ("resnet56", "plain56")})
    assert configs[0] == configs[1] == configs[2]
    assert configs[0]["resnet56"]["iters"] == 1000 and configs[0]["resnet56"]["schedule"]["name"] == "cosine"


def _settings(config):
    """What decides whether a run folder holds this network (driver.SAME)."""
    from resnet.config import to_dict

    d = to_dict(config)
    return {key: d.get(key) for key in driver.SAME}


# A trained shortcuts report (its table and its verdict on the runs' own errors): test_cli's test_reproduce_command


@pytest.mark.parametrize(
    "b_error, holds",
    [(0.205, [True, True]), (0.35, [False, False])],  # B worse than the plain net: not every option beats it
)
def test_shortcut_findings_follow_the_errors(tmp_path, b_error, holds):
    for label, error in (("plain20", 0.30), ("resnet20-A", 0.20), ("resnet20-B", b_error), ("resnet20-C", 0.21)):
        _finished_run(tmp_path / "runs" / label, error, error)
    r = shortcuts(20, out=tmp_path, **FAST)
    assert [f.holds for f in r.findings] == holds
    lines = r.summary.read_text().splitlines()
    little = "the three options differ little (paper: within 0.84 points), so projections are not essential"
    if all(holds):
        assert f"- ✅ reproduced: {little}" in lines
    else:
        assert f"- ❌ not reproduced: {little}: here they span 15.00 points" in lines
        assert (
            "- ❌ not reproduced: every shortcut option beats the plain net: plain 30.00%, A 20.00%, "
            in r.summary.read_text()
        )


def test_the_full_reproduction_needs_cifar10(tmp_path):
    with pytest.raises(UsageError, match="pass --data"):
        degradation(out=tmp_path, progress=False)


def test_a_signal_stops_a_reproduction_which_the_same_command_continues(tmp_path, monkeypatch):
    batch, calls = TensorLoader.batch, []

    def signalled_in_the_second_model(self, step):
        calls.append(step)
        if len(calls) == 6:  # a real SIGTERM during the second model's second step
            signal.raise_signal(signal.SIGTERM)
        return batch(self, step)

    monkeypatch.setattr(TensorLoader, "batch", signalled_in_the_second_model)
    with pytest.raises(Stopped, match=r"^resnet20 stopped by SIGTERM at step 2 of 4, .*same `resnet reproduce`") as e:
        degradation([20], out=tmp_path, **FAST)
    assert e.value.code == 128 + signal.SIGTERM
    assert checkpoint.load(tmp_path / "runs" / "resnet20" / "last.pt")["step"] == 2
    monkeypatch.setattr(TensorLoader, "batch", batch)
    degradation([20], out=tmp_path, **FAST)
    assert (tmp_path / "runs" / "resnet20" / "summary.json").exists()


def test_a_time_limit_stops_the_reproduction_which_the_same_command_continues(tmp_path):
    with pytest.raises(Stopped, match=r"^plain20 stopped by the time limit at step \d of 4") as e:
        degradation([20], out=tmp_path, **FAST, time_limit=0.5)
    assert e.value.code == 75
    assert not (tmp_path / "runs" / "plain20" / "summary.json").exists()
    degradation([20], out=tmp_path, **FAST)
    assert (tmp_path / "runs" / "resnet20" / "summary.json").exists()


@pytest.mark.parametrize("resnet32_seed2, holds", [(0.23, True), (0.245, False)])
def test_with_two_seeds_the_deeper_resnet_is_better_only_when_every_seed_is(tmp_path, resnet32_seed2, holds):
    errors = {"plain20": 0.3, "plain32": 0.4, "resnet20": 0.25, "resnet20-seed2": 0.24, "resnet32": 0.2}
    for label, error in {**errors, "resnet32-seed2": resnet32_seed2}.items():
        _finished_run(tmp_path / "runs" / label, error, error)
    r = degradation([20, 32], out=tmp_path, seeds=[1, 2], **FAST)
    deeper = r.findings[1]
    assert deeper.holds is holds  # the means (21.5 or 22.25 against 24.5) are lower either way
    mean32 = 100 * (0.2 + resnet32_seed2) / 2
    assert deeper.statement == (
        f"the deeper ResNet has the lower test error: ResNet-32 {mean32:.2f}% (seeds from 20.00 to "
        f"{100 * resnet32_seed2:.2f}) against ResNet-20 24.50% (seeds from 24.00 to 25.00), means of 2 seeds"
    )
    assert "| 20 | 0.27M | 30.00 | 30.00 | 24.50 | 24.50 | 25.00, 24.00 | 8.75 |" in r.summary.read_text()


def test_a_preset_sets_what_the_user_leaves_out(tmp_path):
    r = degradation([20], out=tmp_path, preset="cpu", seeds=[3], **FAST)
    config = (tmp_path / "runs" / "resnet20" / "config.yaml").read_text()
    assert "name: cosine" in config and "seed: 3" in config and "iters: 4" in config  # preset, then the user
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"plain20", "resnet20"}
    assert "schedule.name=cosine" in r.summary.read_text()  # the commands that reproduce each model
    with pytest.raises(UsageError, match="has no preset 'laptop' .presets: cpu"):
        degradation([20], out=tmp_path, preset="laptop", **FAST)


def test_overrides_may_be_set_strings_as_the_command_line_gives_them(tmp_path):
    for label in ("plain20", "resnet20-A", "resnet20-B", "resnet20-C"):
        _finished_run(tmp_path / "runs" / label, 0.3, 0.3)
    r = shortcuts(20, out=tmp_path, **{**FAST, "overrides": ["log.evals=2", "seed=3"]})
    summary = r.summary.read_text()
    assert "--set log.evals=2 " in summary and "--set seed=3\n" in summary and "log.evals=10" not in summary


def test_a_protocol_without_jobs_still_gets_its_report(tmp_path):
    class Count(driver.Experiment):  # what an evaluation-only experiment on given weights amounts to
        name = "count"

        def jobs(self):
            return []

        def title(self):
            return "Counting"

        def intro(self):
            return "Nothing trained."

        def command(self):
            return "resnet reproduce count"

        def figures(self, runs, folder):
            return []

        def tables(self, runs):
            return [Table("Counts", ["n"], [[1]])]

        def findings(self, runs):
            return [Finding(True, "one is one")]

    r = driver.run_experiment(Count, driver.Settings(out=tmp_path, quick=True, progress=False))
    assert r.findings == [Finding(True, "one is one")] and not (tmp_path / "runs").exists()
    text = r.summary.read_text()
    assert "| 1 |" in text and "resnet reproduce count\n```" in text


# In a process of its own: SIGINT on the first model's last step, which the model finishes (a stop there
# would save nothing), then the command, which must not go on to the next model
BETWEEN_MODELS = """
import signal, sys
from resnet.cli import main
from resnet.data.loader import TensorLoader

signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal (a background job ignores it)
batch, calls = TensorLoader.batch, []

def interrupted_in_the_last_step(self, step):
    calls.append(step)
    if len(calls) == 2:
        signal.raise_signal(signal.SIGINT)
    return batch(self, step)

TensorLoader.batch = interrupted_in_the_last_step
sys.exit(main(sys.argv[1:]))
"""


def test_a_signal_at_the_end_of_a_model_stops_the_reproduction_before_the_next(tmp_path):
    argv = ["reproduce", "mlp", "--iters", "2", "--blocks", "1", "--out", str(tmp_path), "--set", "log.evals=1"]
    done = subprocess.run([sys.executable, "-c", BETWEEN_MODELS, *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "resnet reproduce: interrupted"
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (tmp_path / "runs" / runs[0] / "summary.json").exists()


def test_after_each_model_the_reproduction_forecasts_the_models_left_by_their_cost(tmp_path, monkeypatch, capsys):
    """On a clock where a model takes a minute per plain20's multiply-adds, each forecast equals the time
    the unfinished models left then take; a model finished before is neither timed nor left."""
    from types import SimpleNamespace

    clock, took = [0.0], {}  # took: the seconds of each model trained
    monkeypatch.setattr(driver, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    def trained(job, config, s, position):
        folder = s.out / "runs" / job.label
        if not (folder / "summary.json").exists():
            took[job.label] = 60 * driver._cost(config) / driver._cost(replace(config, model="plain20"))
            clock[0] += took[job.label]
            folder.mkdir(parents=True)
            (folder / "last.pt").write_bytes(b"")
            (folder / "summary.json").write_text("{}")
        return driver.Run(folder, [])

    class Depths(driver.Experiment):
        name = "depths"

        def jobs(self):
            return [driver.Job(f"plain{d}", f"plain{d}") for d in (20, 32, 44)] + [self.again]

        again = driver.Job("plain20-seed2", "plain20", {"seed": 2})

        def title(self):
            return "Depths"

        def intro(self):
            return "Plain networks."

        def command(self):
            return "resnet reproduce depths"

        def figures(self, runs, folder):
            return []

        def tables(self, runs):
            return []

        def findings(self, runs):
            return []

    _finished_run(tmp_path / "runs" / "plain32", 0.5, 0.5)
    (tmp_path / "runs" / "plain32" / "last.pt").write_bytes(b"")
    monkeypatch.setattr(driver, "_run", trained)
    driver.run_experiment(Depths, driver.Settings(out=tmp_path, quick=True, iters=4))
    lines = [line for line in capsys.readouterr().out.splitlines() if "trained in" in line]
    duration, again = driver.format_duration, took["plain20-seed2"]
    assert lines == [
        f"[1/4] plain20: trained in 1m; the 2 left: about {duration(took['plain44'] + again)} to go",
        f"[3/4] plain44: trained in {duration(took['plain44'])}; the 1 left: about {duration(again)} to go",
    ]
    assert took["plain44"] > 2 * took["plain20"] == 2 * again  # by their cost, not one model's time each


def test_runs_not_finished_are_reported_as_they_stand_at_a_matched_iteration(tmp_path, monkeypatch):
    """--at: each run read up to the iteration (its later evaluations and diagnostics left out), none trained."""
    monkeypatch.setattr(api, "Trainer", lambda *a, **k: pytest.fail("trained"))
    last = {"plain20": 400, "plain32": 300, "resnet20": 300, "resnet32": 400}
    for label, steps in last.items():
        folder = tmp_path / "runs" / label
        folder.mkdir(parents=True)
        plain32_later = 0.1 if label == "plain32" else 0.2  # after 200, plain-32 trains better than plain-20
        rows = [
            {"step": s, "train_error": (0.4 if label == "plain32" and s <= 200 else plain32_later), "test_error": 0.3}
            for s in range(100, steps + 1, 100)
        ]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        norms = {"conv1": 1.0, "fc": 0.5}
        diagnostics = [{"step": s, "response_std": {"a": s / 100}, "gradient_norms": norms} for s in (0, 200, 300)]
        (folder / "diagnostics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in diagnostics))
    r = degradation([20, 32], out=tmp_path, at=200, **FAST)
    assert r.findings[0].holds  # read at 200: plain-32 40% against plain-20's 20%
    assert "plain-32 40.00% against plain-20 20.00%" in r.findings[0].statement
    assert "The networks as they stood at iteration 200" in r.summary.read_text()
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.suffix == ".pt" or p.name == "summary.json"]
    stood = driver.Run(tmp_path / "runs" / "plain20", [], until=200)
    assert [d["step"] for d in stood.diagnostics] == [0, 200]
    common = degradation([20, 32], out=tmp_path / "common", networks=tmp_path / "runs", at="common", **FAST)
    assert "as they stood at iteration 300" in common.summary.read_text()
    assert "plain-32 30.00% against plain-20 20.00%" in common.findings[0].statement  # 40, 40, 10: up to 300
    with pytest.raises(UsageError, match=r"runs/resnet20: not evaluated at iteration 400 \(its last evaluation: 300\)"):
        degradation([20, 32], out=tmp_path, at=400, **FAST)
    with pytest.raises(UsageError, match="plain44: no evaluation to report"):
        degradation([20, 44], out=tmp_path, at=200, **FAST)
