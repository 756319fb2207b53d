"""Every family in channels_last and under bf16 autocast, and a short training run of each."""

import json
import math

import pytest
import torch
from datasets import make_image_folder

from resnet import checkpoint, create_model, list_models, train
from resnet.models import get_spec, input_shape

CLASSIFIERS = [n for n in list_models() if get_spec(n).num_classes is not None]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_model_runs_channels_last_and_under_bf16_autocast(name):
    # Batch statistics (train mode): untrained running statistics let 1202 layers overflow.
    model = create_model(name, num_classes=10)
    shape = input_shape(name, min(get_spec(name).input_size, 64))
    x = torch.randn(2, *shape)
    with torch.no_grad():
        layout = torch.channels_last if x.ndim == 4 else torch.contiguous_format
        last = model.to(memory_format=layout)(x.contiguous(memory_format=layout))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
    assert last.isfinite().all() and half.dtype == torch.bfloat16 and half.shape == (2, 10) and half.isfinite().all()


# Only well-conditioned (residual) nets are compared: at initialization, deep plain nets are chaotic,
# rounding differences of 1e-7 grow to tens of per cent at the logits (the degradation story).
AGREEMENT = [
    ("resnet18", 64),
    ("resnet50", 64),
    ("resnet56", 32),
    ("resnet110", 32),
    ("preact_resnet18", 64),
    ("preact_resnet110", 16),
    ("preact_resnet164", 16),
    ("resnext29_8x64d", 16),
    ("wrn16_4", 16),
    ("densenet_bc100_k12", 16),
    ("densenet121", 32),
    ("resnet9", 32),
]


@pytest.mark.parametrize("name, size", AGREEMENT)
def test_channels_last_and_bf16_autocast_agree_with_float32(name, size):
    model = create_model(name, num_classes=10).eval()
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
        last = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert (last - reference).norm() / reference.norm() < 1e-4
    # bf16 keeps about 3 significant digits; the logits must agree to a few per cent.
    assert half.dtype == torch.bfloat16 and (half.float() - reference).norm() / reference.norm() < 0.05


@pytest.mark.parametrize(
    "name, options", [("resnext29_8x64d", {}), ("wrn16_4", {"dropout": 0.3}), ("densenet_bc100_k12", {})]
)
def test_a_short_run_of_each_family(name, options, tmp_path):
    # 8×8 images, two test images a class: every step of a run, in seconds on a CPU.
    data = make_image_folder(tmp_path / "data", per_class={"train": 16, "test": 2}, size=(8, 8))
    overrides = {"data.workers": 0, "log.evals": 1, "batch_size": 16, "data.image_size": 8, "model_options": options}
    run = tmp_path / "run"
    train(name, str(data), "cifar-paper", run, overrides, iters=2, stop_after=1, progress=False)
    first = checkpoint.load(run / "last.pt")["model"]
    result = train(out=run, resume=True, progress=False)
    assert result.finished and result.steps == 2
    [row] = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert row["step"] == 2 and 0 <= row["test_error"] <= 1 and math.isfinite(row["train_loss"])
    state = checkpoint.load(run / "last.pt")
    assert state["model_name"] == name and options.items() <= state["model_options"].items()
    # the second step moved every weight and batch-norm statistic, to finite values
    second = {k: v for k, v in state["model"].items() if v.is_floating_point()}
    assert all(v.isfinite().all() and not torch.equal(v, first[k]) for k, v in second.items())
    for file in ("last.pt", "best.pt"):  # resnext29_8x64d: 34M parameters and their momentum, 0.26 GB each
        (run / file).unlink()
