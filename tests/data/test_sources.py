import tarfile

import numpy as np
import pytest
import torch
from datasets import make_cifar_archive, make_image_folder

from resnet import UsageError
from resnet.config import DataConfig
from resnet.data import sources
from resnet.data.dataset import ArrayDataset, FileList, sample, stratified_split
from resnet.data.sources import load_data


def test_embedded_subset_is_real_cifar10():
    data = load_data(DataConfig())
    assert isinstance(data.splits["train"], ArrayDataset) and len(data.classes) == 10 and data.classes[0] == "airplane"
    train, test = data.splits["train"], data.splits["test"]
    assert train.images.shape == (5000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() == [500] * 10 and test.labels.bincount().tolist() == [100] * 10
    # natural images: pixel statistics near the full set's (mean 0.49, 0.48, 0.45)
    mean = train.images.double().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4913, 0.4821, 0.4465], dtype=torch.float64), atol=0.02)


def test_folder_is_decoded_into_tensors(image_folder):
    data = load_data(DataConfig(source=str(image_folder)))
    assert isinstance(data.splits["train"], ArrayDataset) and data.classes == ["blue", "green", "red"]
    images, labels = data.splits["train"].images, data.splits["train"].labels
    assert images.shape == (120, 3, 32, 32)
    # the class is in the color: blue images are bluest
    blue = images[labels == 0].double().mean(dim=(0, 2, 3))
    assert blue[2] > blue[0] and blue[2] > blue[1]


def test_decoded_data_is_cached(image_folder, monkeypatch):
    first = load_data(DataConfig(source=str(image_folder)))
    monkeypatch.setattr(sources, "decode_layout", lambda *a: pytest.fail("decoded again"))
    second = load_data(DataConfig(source=str(image_folder)))
    assert torch.equal(first.splits["train"].images, second.splits["train"].images)


def test_a_changed_folder_is_decoded_again(tmp_path):
    make_image_folder(tmp_path, {"train": 4, "test": 2})
    assert load_data(DataConfig(source=str(tmp_path))).size("train") == 12
    for cls in ("blue", "green", "red"):  # one more image per class
        (tmp_path / "train" / cls / "new.png").write_bytes((tmp_path / "train" / cls / "000.png").read_bytes())
    assert load_data(DataConfig(source=str(tmp_path))).size("train") == 15


def test_other_sizes_are_resized_and_center_cropped(tmp_path):
    make_image_folder(tmp_path, {"train": 3, "test": 1}, size=(48, 40))
    data = load_data(DataConfig(source=str(tmp_path), image_size=32))
    assert isinstance(data.splits["train"], ArrayDataset) and data.splits["train"].images.shape == (9, 3, 32, 32)


def test_large_images_stream(tmp_path):
    make_image_folder(tmp_path, {"train": 3, "test": 1}, size=(96, 80))
    data = load_data(DataConfig(source=str(tmp_path), image_size=64))
    assert isinstance(data.splits["train"], FileList) and len(data.splits["train"].files) == 9


def test_streaming_an_archive_is_refused(tmp_path):
    make_image_folder(tmp_path / "f", {"train": 2, "test": 1}, size=(96, 80))
    with tarfile.open(tmp_path / "f.tar", "w") as tar:
        tar.add(tmp_path / "f", arcname="f")
    with pytest.raises(UsageError, match="extracted folder"):
        load_data(DataConfig(source=str(tmp_path / "f.tar")))


def test_test_part_is_held_out_when_there_is_no_test_split(tmp_path):
    make_image_folder(tmp_path, {None: 20})
    data = load_data(DataConfig(source=str(tmp_path), test_fraction=0.25))
    assert (data.size("train"), data.size("test")) == (45, 15)
    assert data.splits["test"].labels.bincount().tolist() == [5, 5, 5]


def test_validation_split(image_folder):
    data = load_data(DataConfig(source=str(image_folder), val_size=30))
    assert data.split_names == ["train", "val", "test"]
    assert (data.size("train"), data.size("val"), data.size("test")) == (90, 30, 30)
    both = torch.cat([data.splits["train"].images, data.splits["val"].images])
    assert len(torch.unique(both.flatten(1), dim=0)) == 120  # disjoint


def test_validation_split_too_large(image_folder):
    with pytest.raises(UsageError, match="leaves no training images"):
        load_data(DataConfig(source=str(image_folder), val_size=500))


def test_stratified_split_is_deterministic_and_even():
    labels = np.repeat(np.arange(4), 25)
    kept, held = stratified_split(labels, 10)
    assert np.array_equal(held, stratified_split(labels, 10)[1])
    assert np.bincount(labels[held]).tolist() == [3, 3, 2, 2]
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 100


def test_a_sample_takes_every_class_evenly_and_its_first_items_mix_them():
    labels = torch.arange(4).repeat_interleave(25)  # read class by class, as a folder of class folders
    split = ArrayDataset(images=torch.arange(100).view(100, 1), labels=labels, classes=list("abcd"))
    drawn = sample(split, 40)
    assert drawn.labels.bincount().tolist() == [10] * 4 and torch.equal(drawn.labels, labels[drawn.images[:, 0]])
    assert len(set(drawn.images[:, 0].tolist())) == 40 and torch.equal(drawn.images, sample(split, 40).images)
    assert len(drawn.labels[:8].unique()) >= 3  # not the first class only
    assert not torch.equal(drawn.images, sample(split, 40, seed=1).images)
    files = sample(FileList(layout=None, files=[(f"{i}.jpg", int(c)) for i, c in enumerate(labels)]), 8)
    assert sorted(label for _, label in files.files) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sorted(i for (i,) in sample(split, 500).images.tolist()) == list(range(100))  # more than there are: all


def test_cifar_archive_by_path(tmp_path):
    archive = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=10)
    data = load_data(DataConfig(source=str(archive), val_size=10))
    assert (data.size("train"), data.size("val"), data.size("test")) == (40, 10, 10)
    assert data.classes[:2] == ["c0", "c1"]


def test_named_cifar_without_download(tmp_path):
    with pytest.raises(UsageError, match="add --download"):
        load_data(DataConfig(source="cifar10", root=str(tmp_path)))


def test_bad_image_is_named_or_skipped(tmp_path):
    make_image_folder(tmp_path, {"train": 4, "test": 1})
    (tmp_path / "train" / "red" / "001.png").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="train/red/001.png: not an image"):
        load_data(DataConfig(source=str(tmp_path)))
    data = load_data(DataConfig(source=str(tmp_path), skip_bad_images=True))
    assert data.skipped == [str(tmp_path / "train" / "red" / "001.png")] and data.size("train") == 11


def test_empty_folder(tmp_path):
    with pytest.raises(UsageError, match="empty"):
        load_data(DataConfig(source=str(tmp_path)))
