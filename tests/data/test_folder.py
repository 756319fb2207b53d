import tarfile

import pytest
from datasets import make_image_folder

from resnet import UsageError
from resnet.data.folder import scan


def test_split_folders(image_folder):
    layout = scan(image_folder)
    assert layout.classes == ["blue", "green", "red"]
    assert {s: len(f) for s, f in layout.splits.items()} == {"train": 120, "test": 30}
    assert sorted({label for _, label in layout.splits["test"]}) == [0, 1, 2]


def test_class_folders_without_splits(tmp_path):
    make_image_folder(tmp_path, {None: 5})
    layout = scan(tmp_path)
    assert list(layout.splits) == ["train"] and len(layout.splits["train"]) == 15


def test_archive_with_a_top_folder(tmp_path, image_folder):
    archive = tmp_path / "colors.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(image_folder, arcname="colors")
    layout = scan(archive)
    assert layout.classes == ["blue", "green", "red"]
    assert layout.splits["train"][0][0].startswith("colors/train/blue/")


def test_an_archive_made_from_inside_its_folder_reads_the_same(tmp_path, image_folder):
    """`tar czf x.tar.gz .` names its members ./train/...: the same layout as train/... ."""
    dotted, plain = tmp_path / "dotted.tar.gz", tmp_path / "plain.tar.gz"
    for archive, name in ((dotted, "."), (plain, "")):
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(image_folder.rglob("*")):
                arcname = f"{name}/{path.relative_to(image_folder).as_posix()}".lstrip("/")
                tar.add(path, arcname=arcname, recursive=False)
    assert scan(dotted).splits["train"][0][0].startswith("./train/")
    same = scan(dotted).classes == scan(plain).classes
    assert same and {s: [label for _, label in f] for s, f in scan(dotted).splits.items()} == {
        s: [label for _, label in f] for s, f in scan(plain).splits.items()
    }


def test_an_archive_replaced_by_another_is_read_again(tmp_path, image_folder):
    """What is kept of an archive (its listing, whether its images are small) goes with its size and time."""
    from resnet.config import DataConfig
    from resnet.data.sources import load_data

    archive = tmp_path / "colors.tar.gz"
    for classes in (("blue", "green", "red"), ("green", "red")):
        with tarfile.open(archive, "w:gz") as tar:
            for cls in classes:
                tar.add(image_folder / "train" / cls, arcname=f"train/{cls}")
                tar.add(image_folder / "test" / cls, arcname=f"test/{cls}")
        assert load_data(DataConfig(source=str(archive), workers=0)).classes == list(classes)


def test_val_folder_is_a_split(tmp_path):
    make_image_folder(tmp_path, {"train": 2, "validation": 1})
    assert set(scan(tmp_path).splits) == {"train", "val"}


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: None, "no images found"),
        (lambda p: make_image_folder(p, {"test": 2}), "no train/<class>/ images"),
        (lambda p: (make_image_folder(p, {"train": 2}), (p / "train" / "empty").mkdir()), "train/empty has no images"),
    ],
)
def test_bad_layouts_are_named(tmp_path, build, message):
    build(tmp_path)
    with pytest.raises(UsageError, match=message):
        scan(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        scan(tmp_path / "nope")


def test_a_single_class_is_refused(tmp_path):
    make_image_folder(tmp_path, {"train": 2})
    for cls in ("green", "red"):
        for f in (tmp_path / "train" / cls).iterdir():
            f.unlink()
        (tmp_path / "train" / cls).rmdir()
    with pytest.raises(UsageError, match="at least 2"):
        scan(tmp_path)


def test_test_class_unknown_to_train(tmp_path):
    make_image_folder(tmp_path, {"train": 1, "test": 1})
    (tmp_path / "test" / "red").rename(tmp_path / "test" / "purple")
    with pytest.raises(UsageError, match="class 'purple' of the test split"):
        scan(tmp_path)
