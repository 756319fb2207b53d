import json

import pytest
import torch
from datasets import QUICK

import resnet
from resnet import checkpoint
from resnet.config import resolve
from resnet.export import export_model
from resnet.models.weights import read_weights
from resnet.train.trainer import Trainer


def test_the_average_is_the_hand_computed_one(image_folder, tmp_path):
    # updates after steps 2, 4 and 6: the first copies the network, the next decay by the warm-up's
    # 1 - (1 + k)^(-2/3) after k updates (0.370, 0.519), under the 0.6 asked for
    settings = {**QUICK, "ema.decay": 0.6, "ema.every": 2, "data.source": str(image_folder)}
    trainer = Trainer(resolve("cifar-paper", settings, iters=6), tmp_path, progress=False)
    seen = [{k: v.clone() for k, v in trainer.model.state_dict().items()} for _ in trainer.steps()]
    average = dict(seen[1])
    for k, weights in ((1, seen[3]), (2, seen[5])):
        decay = min(0.6, 1 - (1 + k) ** (-2 / 3))
        for name, value in weights.items():
            floating = value.is_floating_point()
            average[name] = decay * average[name] + (1 - decay) * value if floating else value
    got = trainer.ema.module.state_dict()
    assert trainer.ema.updates == 3
    for name, value in average.items():
        assert torch.allclose(got[name], value, rtol=0, atol=1e-6), name
    assert got["bn1.num_batches_tracked"] == 6  # a count, copied
    moved = seen[5]["conv1.weight"] - seen[3]["conv1.weight"]
    assert not torch.allclose(got["conv1.weight"], seen[5]["conv1.weight"]) and moved.abs().max() > 1e-4


def test_the_average_is_evaluated_selected_and_saved_as_the_model(image_folder, tmp_path):
    settings = {**QUICK, "ema.decay": 0.9, "log.evals": 2}
    resnet.train("resnet20", str(image_folder), "cifar-paper", tmp_path, settings, iters=6, progress=False)
    best, last = checkpoint.load(tmp_path / "best.pt"), checkpoint.load(tmp_path / "last.pt")
    average, trained = last["model"], last["trained_model"]
    assert not torch.equal(average["conv1.weight"], trained["conv1.weight"]) and last["ema_updates"] == 6
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert best["schedule"]["best_eval"] == min(r["test_error"] for r in rows)  # selected on the average
    # what a user gets from the checkpoint: the average, in eval, predict and every export
    m = resnet.evaluate(tmp_path / "last.pt", device="cpu")
    assert m["top1_error"] == pytest.approx(rows[-1]["test_error"])
    assert all(torch.equal(v, average[k]) for k, v in resnet.load(tmp_path / "last.pt").model.state_dict().items())
    exported = read_weights(export_model(tmp_path / "last.pt", "safetensors", tmp_path / "m.safetensors").path)
    assert all(torch.equal(v, average[k]) for k, v in exported.state.items())
    # the trained weights' error is logged beside it
    raw = dict(last, model=trained)
    del raw["format"], raw["version"]
    checkpoint.save(raw, tmp_path / "raw.pt")
    m_raw = resnet.evaluate(tmp_path / "raw.pt", device="cpu")
    assert m_raw["top1_error"] == pytest.approx(rows[-1]["test_raw_error"])
