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
    assert c.data.lighting == 0.1  # "the standard color augmentation" (Krizhevsky et al. 2012)


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


def test_a_value_given_twice_is_refused_not_overwritten():
    assert resolve("cifar-paper", ["model=resnet32"], model="resnet32").model == "resnet32"  # the same: fine
    with pytest.raises(UsageError, match="model is given twice: 'resnet56' as an override .* and 'resnet32'"):
        resolve("cifar-paper", ["model=resnet56"], model="resnet32")
    with pytest.raises(UsageError, match="epochs is given twice"):  # two lengths: which one?
        resolve("cifar-paper", ["epochs=3"], iters=100)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lrr=0.1", "unknown key 'optimizer.lrr'; did you mean optimizer.lr?"),
        ("lr=0.05", r"^unknown key 'lr'; did you mean optimizer.lr\? \(`resnet recipes` lists every key\)$"),
        ("batch_sise=3", "unknown key 'batch_sise'; did you mean batch_size?"),
        ("bogus=1", "unknown key 'bogus'; valid keys: model, model_options, recipe, batch_size"),
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
        ("data.mixup=-0.2", "data.mixup must not be negative"),
        ("data.mix_prob=1.5", r"data.mix_prob must be in \[0, 1\]"),
        ("data.random_erase=2", r"data.random_erase must be in \[0, 1\]"),
        ("data.erase_area=[0.4, 0.2]", r"data.erase_area must be two numbers low ≤ high, in \[0, 1\], not"),
        ("data.erase_area=[0.2]", "data.erase_area must be two numbers"),
        ("data.area=[0, 1]", r"data.area must be two numbers low ≤ high, in \(0, 1\], not \[0.0, 1.0\]"),
        ("data.area=[0.5, 1.5]", r"data.area must be two numbers low ≤ high, in \(0, 1\]"),
        ("data.scale=[480, 256]", r"data.scale must be two numbers low ≤ high, in \(0, inf\)"),
        ("data.erase_ratio=[0, 3]", r"data.erase_ratio must be two numbers low ≤ high, in \(0, inf\)"),
        ("data.auto_augment=autoaugment", "data.auto_augment='autoaugment' is not one of: none, randaugment"),
        ("data.randaugment_magnitude=31", r"data.randaugment_magnitude must be in \[0, 30\]"),
        ("loss=focal", "loss='focal' is not one of: cross-entropy, bce"),
        ("bce_threshold=0.2", "bce_threshold=0.2 applies to loss=bce, not loss=cross-entropy"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UsageError, match=message):
        resolve("cifar-paper", [override])


def test_mixing_erasing_policies_and_bce_are_off_but_in_the_modern_recipes():
    modern = {"cifar-modern", "imagenet-tv2", "rsb-a1", "rsb-a2", "rsb-a3"}
    assert modern <= set(recipe_names())
    for name in set(recipe_names()) - modern:
        c = resolve(name)
        d = c.data
        assert (d.mixup, d.cutmix, d.random_erase, d.auto_augment, c.loss) == (0, 0, 0, "none", "cross-entropy")
    assert resolve("fast", ["loss=bce", "bce_threshold=0.2", "data.erase_area=[0.1, 0.1]"]).bce_threshold == 0.2


def test_unknown_recipe_lists_the_recipes():
    with pytest.raises(UsageError, match=f"unknown recipe 'paper'; choose one of: {', '.join(recipe_names())}$"):
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


# Property-based: whatever the text, the parser answers with a config or a UsageError, nothing else.

import yaml  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from resnet.config import TrainConfig, apply_override, from_dict  # noqa: E402

KEYS = sorted(to_flat(TrainConfig()))
SCALARS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=12),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_any_override_gives_a_config_or_a_usage_error(key, value):
    try:
        config = resolve("cifar-paper", [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"])
    except UsageError:
        return
    assert isinstance(config, TrainConfig)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(KEYS), value=SCALARS)
def test_override_values_round_trip_through_yaml(key, value):
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    assert parse_override(f"{key}={text}") == (key, value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_override_text(text):
    try:
        key, value = parse_override(text)
    except UsageError:
        return
    assert key == text.partition("=")[0].strip() and key


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.one_of(SCALARS, st.none()),
        lambda children: st.dictionaries(
            st.sampled_from(["data", "lr", "optimizer", "iters", "x"]), children, max_size=3
        ),
        max_leaves=8,
    )
)
def test_arbitrary_mappings(raw):
    try:
        from_dict(TrainConfig, raw)
    except UsageError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_recipe_files(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("r") / "r.yaml"
    path.write_text(text)
    try:
        resolve(str(path))
    except UsageError:
        pass


def test_apply_override_builds_sections():
    raw = {}
    apply_override(raw, "a.b.c", 1)
    assert raw == {"a": {"b": {"c": 1}}}


def test_exponents_without_a_dot_are_numbers():
    assert resolve("cifar-paper", ["optimizer.lr=1e-3"]).optimizer.lr == 0.001
