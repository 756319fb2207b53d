import re

import pytest

from resnet import UsageError, checkpoint
from resnet.analysis import degradation, reproduce, shortcuts
from resnet.data.loader import TensorLoader

# log.eval_share=1: evaluations every 2 of the 4 steps, which the 10% bound on evaluation would stretch to one
FAST = dict(quick=True, iters=4, progress=False, overrides={"log.evals": 2, "log.eval_share": 1.0})


def test_degradation_report(tmp_path):
    html, md = degradation([20], out=tmp_path, **FAST)
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"plain20", "resnet20"}
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 3 and not re.search(r"src=['\"](?!data:)", page)
    summary = md.read_text()
    assert "| 20 | 0.27M |" in summary and "Table 6" in summary and "8.75" in summary
    assert "resnet train --model plain20" in summary and "torch" in summary
    for figure in ("fig6_training_curves.png", "fig7_layer_responses.png", "gradient_flow.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 10_000


def test_findings_state_the_numbers(tmp_path):
    _, md = degradation([20, 32], out=tmp_path, **FAST)
    findings = md.read_text().split("## Findings")[1].split("##")[0]
    assert re.search(
        r"(✅ reproduced|❌ not reproduced): the deeper plain net has the higher training error: "
        r"plain-32 \d+\.\d\d% against plain-20 \d+\.\d\d%",
        findings,
    )
    assert findings.count("ResNet responses are smaller") == 2


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

    trained = []
    real_train = reproduce.train
    monkeypatch.setattr(reproduce, "train", lambda *a, **k: trained.append(k.get("resume")) or real_train(*a, **k))
    degradation([20], out=tmp_path, **FAST)
    assert trained == [True]  # plain20 kept, resnet20 resumed
    assert checkpoint.load(tmp_path / "runs" / "resnet20" / "last.pt")["step"] == 4


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    degradation([20], out=tmp_path, **FAST)
    with pytest.raises(UsageError, match="holds a run with other settings .iters"):
        degradation([20], out=tmp_path, **{**FAST, "iters": 5})


def test_shortcuts_report(tmp_path):
    _, md = shortcuts(20, out=tmp_path, **FAST)
    text = md.read_text()
    for row in ("| none | 269,722 |", "| A | 269,722 |", "| B | 272,474 |", "| C | 283,962 |"):
        assert row in text
    assert "every shortcut option beats the plain net" in text


def test_the_full_reproduction_needs_cifar10(tmp_path):
    with pytest.raises(UsageError, match="pass --data"):
        degradation(out=tmp_path, progress=False)
