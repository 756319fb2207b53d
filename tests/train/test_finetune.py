import math

import pytest
import torch
from datasets import QUICK
from reference_weights import reference_state_dict

from resnet import UsageError, checkpoint, finetune
from resnet.config import resolve
from resnet.train.finetune import unfreeze_steps
from resnet.train.trainer import Trainer

SOURCE_CLASSES = 10  # the shared trained_run fixture has 3 classes; the sources below are made here


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A resnet20 pre-trained (briefly) on the embedded CIFAR-10 subset: 10 classes."""
    from resnet import train

    out = tmp_path_factory.mktemp("source")
    train("resnet20", None, "cifar-paper", out, QUICK, iters=4, progress=False)
    return out / "last.pt"


def _run(source, image_folder, out, mode, iters=6, **kw):
    return finetune(
        str(source), str(image_folder), mode=mode, out=out, overrides=QUICK, iters=iters, progress=False, **kw
    )


def _trainer(source, image_folder, out, mode, iters):
    overrides = {**QUICK, "finetune.source": str(source), "finetune.mode": mode, "data.source": str(image_folder)}
    return Trainer(resolve("finetune", overrides, model="resnet20", iters=iters), out, progress=False)


def test_linear_probe_trains_only_the_new_classifier(source, image_folder, tmp_path):
    _run(source, image_folder, tmp_path, "linear")
    before, after = checkpoint.load(source)["model"], checkpoint.load(tmp_path / "last.pt")
    assert after["model"]["fc.weight"].shape == (3, 64) and before["fc.weight"].shape == (SOURCE_CLASSES, 64)
    backbone = [k for k in before if not k.startswith("fc.")]
    assert all(torch.equal(before[k], after["model"][k]) for k in backbone)  # BN statistics included
    assert after["normalize"]["mean"].shape == (3, 32, 32)  # the source's per-pixel mean, not the data's


def _step_size(p: torch.nn.Parameter, start: torch.Tensor, weight_decay: float) -> float:
    """The learning rate of the first SGD step of `p` from `start`: step = lr × (gradient + wd × weight)."""
    direction = p.grad + weight_decay * start
    return ((start - p.detach()) * direction).sum().item() / (direction * direction).sum().item()


@pytest.mark.parametrize("backbone_lr", [0.1, 0.25])
def test_full_fine_tuning_trains_the_backbone_slower(source, image_folder, tmp_path, backbone_lr):
    overrides = {**QUICK, "finetune.source": str(source), "finetune.mode": "full", "data.source": str(image_folder)}
    overrides["finetune.backbone_lr"] = backbone_lr
    trainer = Trainer(resolve("finetune", overrides, model="resnet20", iters=4), tmp_path, progress=False)
    weights = {"head": trainer.model.fc.weight, "backbone": trainer.model.layer2[0].conv1.weight}
    start = {k: p.detach().clone() for k, p in weights.items()}
    trainer.run(stop_after=1)
    # the rate each part actually moved at, measured from its weights and gradient
    wd = trainer.config.optimizer.weight_decay
    rate = {k: _step_size(p, start[k], wd) for k, p in weights.items()}
    assert rate["head"] == pytest.approx(trainer.schedule(0), rel=1e-3)
    assert rate["backbone"] == pytest.approx(backbone_lr * rate["head"], rel=1e-3)


def test_gradual_unfreezing_from_the_top(source, image_folder, tmp_path):
    trainer = _trainer(source, image_folder, tmp_path, "gradual", iters=12)
    trainer._freeze()
    trainable = [name for name, m in trainer.model.named_children() if any(p.requires_grad for p in m.parameters())]
    assert trainable == ["fc"]
    order = sorted(
        (p.unfreeze_at, [n for n, m in trainer.model.named_children() if m is p.modules[0]][0]) for p in trainer.parts
    )
    assert order == [(2, "layer3"), (4, "layer2"), (6, "layer1"), (8, "bn1"), (10, "conv1")]
    trainer.run()
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_parts_unfreeze_at_the_first_of_their_steps_that_reaches_their_fraction():
    fractions = [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0, math.inf]  # gradual's five blocks; always; never
    assert unfreeze_steps(fractions, 12) == [10, 8, 6, 4, 2, 0, math.inf]
    # 3 of 20 steps falls short of 1/6, and 13 of 4/6: those parts wait for the next step, 7 and 17
    assert unfreeze_steps(fractions, 20) == [17, 17, 10, 7, 7, 0, math.inf]


def test_from_a_torchvision_file(image_folder, tmp_path):
    path = tmp_path / "resnet18-torchvision.pth"
    torch.save({k: torch.from_numpy(v) for k, v in reference_state_dict("resnet18").items()}, path)
    result = _run(path, image_folder, tmp_path / "run", "linear", iters=2, model="resnet18")
    assert result.steps == 2
    trained, file = checkpoint.load(tmp_path / "run" / "last.pt")["model"], torch.load(path)
    backbone = [k for k in file if not k.startswith("fc.")]
    assert backbone == [k for k in trained if not k.startswith("fc.")]
    assert all(torch.equal(trained[k], file[k]) for k in backbone)  # loaded, and kept by the linear probe
    mean = checkpoint.load(tmp_path / "run" / "last.pt")["normalize"]["mean"].flatten()
    assert torch.allclose(mean, torch.tensor([123.675, 116.28, 103.53]))  # ImageNet's, as the weights expect
    with pytest.raises(UsageError, match="say which network"):
        _run(path, image_folder, tmp_path / "again", "linear")


def test_a_mode_given_twice_is_refused(source, image_folder, tmp_path):
    overrides = {**QUICK, "finetune.mode": "linear"}
    finetune(str(source), str(image_folder), out=tmp_path / "a", overrides=overrides, iters=1, progress=False)
    config = checkpoint.load(tmp_path / "a" / "last.pt")["config"]
    assert config["finetune"]["mode"] == "linear"  # --set alone takes effect (no --mode default replaces it)
    with pytest.raises(UsageError, match="finetune.mode is given twice: 'linear' as an override .* and 'full'"):
        finetune(str(source), str(image_folder), mode="full", out=tmp_path / "b", overrides=overrides, iters=1)
