import pytest

from resnet import UsageError
from resnet.config import load_recipe, parse_override, recipe_names, resolve, to_flat


def test_shipped_recipes():
    assert {"cifar-paper", "imagenet-paper", "fast"} <= set(recipe_names())
    for name in recipe_names():
        assert resolve(name).recipe == name


def test_cifar_paper_is_section_4_2():
    c = resolve("cifar-paper")
    assert (c.batch_size, c.iters, c.optimizer.lr, c.optimizer.momentum, c.optimizer.weight_decay) == (
        128,
        64000,
        0.1,
        0.9,
        1e-4,
    )
    assert [round(m * c.iters) for m in c.schedule.milestones] == [32000, 48000]
    assert (c.schedule.gamma, c.schedule.warmup_lr, c.schedule.warmup_until_error) == (0.1, 0.01, 0.8)
    assert (c.data.augment, c.data.pad, c.data.image_size) == ("pad-crop-flip", 4, 32)


def test_imagenet_paper_is_section_3_4():
    c = resolve("imagenet-paper")
    assert (c.batch_size, c.optimizer.lr, c.optimizer.weight_decay, c.data.augment, c.data.scale) == (
        256,
        0.1,
        1e-4,
        "scale",
        [256, 480],
    )


def test_overrides_are_typed_by_yaml():
    c = resolve(
        "cifar-paper",
        [
            "optimizer.lr=0.05",
            "data.val_size=5000",
            "schedule.milestones=[0.3, 0.6]",
            "channels_last=true",
            "model_options={shortcut: B}",
        ],
    )
    assert c.optimizer.lr == 0.05 and c.data.val_size == 5000.0 and c.schedule.milestones == [0.3, 0.6]
    assert c.channels_last is True and c.model_options == {"shortcut": "B"}


def test_length_fields_replace_the_recipes():
    c = resolve("cifar-paper", iters=0, epochs=2.5)
    assert (c.iters, c.epochs) == (0, 2.5)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lrr=0.1", "unknown key 'optimizer.lrr'; valid keys: optimizer.name, optimizer.lr"),
        ("bogus=1", "unknown key 'bogus'"),
        ("batch_size=abc", "batch_size must be int, not 'abc'"),
        ("batch_size=0", "batch_size must be positive"),
        ("batch_size=1.5", "batch_size must be int"),
        ("optimizer.lr=-1", "optimizer.lr must not be negative"),
        ("precision=fp8", "precision='fp8' is not one of: fp32, bf16, fp16, auto"),
        ("schedule.milestones=[32000]", "fractions of the run"),
        ("data=3", "data must be a mapping"),
        ("optimizer.lr.x=1", "optimizer.lr: lr is not a section|lr is not a section"),
        ("nonsense", "is not key=value"),
        ("label_smoothing=1.5", "label_smoothing must be in"),
        ("device=tpu", "device='tpu'"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UsageError, match=message):
        resolve("cifar-paper", [override])


def test_unknown_recipe_lists_the_recipes():
    with pytest.raises(UsageError, match="unknown recipe 'paper'; choose one of: cifar-paper, fast, imagenet-paper"):
        resolve("paper")


def test_recipe_file_with_malformed_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("batch_size: [1, 2\n")
    with pytest.raises(UsageError, match="mine.yaml: line 2 malformed YAML"):
        load_recipe(str(path))


def test_recipe_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("batch_size: 64\nepochs: 3\noptimizer: {lr: 0.02}\n")
    c = resolve(str(path))
    assert (c.batch_size, c.epochs, c.optimizer.lr, c.optimizer.momentum) == (64, 3.0, 0.02, 0.9)


def test_parse_override_plain_strings():
    assert parse_override("data.source=my folder/x") == ("data.source", "my folder/x")
    assert parse_override("model=resnet56") == ("model", "resnet56")


def test_flat_view():
    flat = to_flat(resolve("fast"))
    assert flat["optimizer.nesterov"] is True and flat["schedule.name"] == "onecycle"
