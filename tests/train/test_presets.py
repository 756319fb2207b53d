"""The modern ImageNet presets (torchvision's v2 recipe, timm's "ResNet strikes back" A1-A3): each is
its source's, and each trains a few steps as it is (its model, crops, mixing, loss, optimizer, EMA)."""

import json

import pytest
import torch
import yaml
from tests.fixtures.datasets import make_image_folder

from resnet import UsageError
from resnet.config import TrainConfig, from_dict, resolve, to_flat
from resnet.train import train

MODERN = ["imagenet-tv2", "rsb-a1", "rsb-a2", "rsb-a3"]


def _torchvision_loads() -> bool:
    try:
        import torchvision.transforms  # noqa: F401
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def test_imagenet_tv2_is_torchvisions_recipe():
    c = resolve("imagenet-tv2")
    d, o = c.data, c.optimizer
    assert (c.model, c.batch_size, c.epochs, o.name, o.lr, o.momentum, o.weight_decay) == (
        "resnet50",
        1024,
        600,
        "sgd",
        0.5,
        0.9,
        2e-5,
    )
    assert not o.decay_norm_and_bias  # --norm-weight-decay 0.0
    assert (c.schedule.name, round(c.schedule.warmup * c.epochs, 3), c.label_smoothing) == ("cosine", 5, 0.1)
    assert (d.mixup, d.cutmix, d.mix_prob, d.auto_augment, d.random_erase) == (0.2, 1.0, 1.0, "trivialaugment", 0.1)
    assert (d.augment, d.image_size, d.eval_size, round(d.eval_size * d.eval_resize)) == (
        "random-resized-crop",
        176,
        224,
        232,
    )
    # torchvision's train.py scales --model-ema-decay 0.99998 by world × batch × steps / epochs
    assert c.ema.every == 32
    assert c.ema.decay == pytest.approx(1 - 2e-5 * 1024 * 32 / 600, abs=1e-5)


@pytest.mark.parametrize(
    "name, epochs, lr, wd, smoothing, drop_path, magnitude, mixup, train_size",
    [
        ("rsb-a1", 600, 5e-3, 0.01, 0.1, 0.05, 21, 0.2, 224),
        ("rsb-a2", 300, 5e-3, 0.02, 0.0, 0.05, 21, 0.1, 224),
        ("rsb-a3", 100, 8e-3, 0.02, 0.0, 0.0, 18, 0.1, 160),
    ],
)
def test_rsb_presets_are_table_1(name, epochs, lr, wd, smoothing, drop_path, magnitude, mixup, train_size):
    c = resolve(name)
    d, o = c.data, c.optimizer
    assert (c.model, c.batch_size, c.epochs, o.name, o.lr, o.weight_decay) == ("resnet50", 2048, epochs, "lamb", lr, wd)
    assert (c.loss, c.bce_threshold, c.label_smoothing, c.model_options["drop_path_rate"]) == (
        "bce",
        0.2,
        smoothing,
        drop_path,
    )
    assert (c.schedule.name, round(c.schedule.warmup * c.epochs, 3)) == ("cosine", 5)
    assert (d.auto_augment, d.randaugment_ops, d.randaugment_magnitude) == ("randaugment", 2, magnitude)
    assert (d.mixup, d.cutmix, d.image_size, d.eval_size) == (mixup, 1.0, train_size, 224)
    assert round(d.eval_size / d.eval_resize) == round(224 * 0.95)  # test crop ratio 0.95
    assert c.ema.decay == 0  # Table 1: no EMA


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three classes of 64×48 images: the presets' random-resized crops are larger than them."""
    return make_image_folder(tmp_path_factory.mktemp("photos"), {"train": 4, "test": 2}, size=(64, 48))


@pytest.mark.parametrize("name", MODERN)
def test_modern_preset_trains_a_few_steps(name, photos, tmp_path):
    # the preset as it is but for the batch and, to keep the suite fast, ResNet-18 (its options, e.g.
    # stochastic depth, kept) and crops a quarter of the size
    c = resolve(name)
    small = {"model": "resnet18", "data.image_size": c.data.image_size // 4, "data.eval_size": c.data.eval_size // 4}
    settings = {"batch_size": 4, "data.workers": 0, "log.evals": 1, **small}
    if not _torchvision_loads():  # the policies are torchvision's: say so, then train without them
        with pytest.raises(UsageError, match="torchvision"):
            train(None, str(photos), name, tmp_path / "refused", settings, iters=2, progress=False)
        settings["data.auto_augment"] = "none"
    result = train(None, str(photos), name, tmp_path / name, settings, iters=2, progress=False)
    summary = json.loads((result.out / "summary.json").read_text())
    assert result.finished and (summary["recipe"], summary["model"], summary["steps"]) == (name, "resnet18", 2)
    saved = to_flat(from_dict(TrainConfig, yaml.safe_load((result.out / "config.yaml").read_text())))
    preset = to_flat(c)
    changed = {key for key in preset if saved[key] != preset[key]}  # the run trained the preset's settings
    assert changed == {"batch_size", "iters", "epochs", "data.source", "log.evals", "data.workers", *small} | (
        set() if _torchvision_loads() else {"data.auto_augment"}
    )
    assert 0 <= result.test_error <= 1


def test_cifar_modern_trains_on_resident_tensors_with_its_average(image_folder, tmp_path):
    settings = {"batch_size": 16, "log.evals": 1}
    result = train(None, str(image_folder), "cifar-modern", tmp_path, settings, iters=3, progress=False)
    saved = to_flat(from_dict(TrainConfig, yaml.safe_load((result.out / "config.yaml").read_text())))
    preset = to_flat(resolve("cifar-modern"))
    assert {key for key in preset if saved[key] != preset[key]} == {"batch_size", "iters", "data.source", "log.evals"}
    assert saved["data.mode"] == "auto" and (saved["data.mixup"], saved["ema.decay"]) == (0.2, 0.998)
    state = torch.load(result.out / "last.pt", weights_only=False)
    assert state["ema_updates"] == 3  # the average, saved as the model beside the trained weights
    assert any(not torch.equal(state["model"][k], state["trained_model"][k]) for k in state["model"])
