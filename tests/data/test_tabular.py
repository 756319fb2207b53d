import gzip

import numpy as np
import pytest

from resnet import UsageError
from resnet.config import DataConfig
from resnet.data import tabular
from resnet.data.sources import load_data


def test_csv_with_a_header_and_a_label_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,target,b\n1,cat,2\n3,dog,4\n5,cat,6\n")
    arrays = tabular.load(path)
    assert arrays["train_images"].tolist() == [[1, 2], [3, 4], [5, 6]]
    assert arrays["train_labels"].tolist() == [0, 1, 0] and arrays["classes"].tolist() == ["cat", "dog"]


def test_csv_without_header_takes_the_last_column(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("0.5,1,7\n0.25,2,3\n")
    arrays = tabular.load(path)
    assert arrays["train_images"].dtype == np.float32 and arrays["train_images"].shape == (2, 2)
    assert arrays["classes"].tolist() == ["3", "7"] and arrays["train_labels"].tolist() == [1, 0]


def test_npy_and_npz(tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 3))
    y = np.arange(10) % 2
    np.save(tmp_path / "a.npy", np.column_stack([x, y]))
    np.savez(tmp_path / "b.npz", X=x, y=y)
    for name in ("a.npy", "b.npz"):
        arrays = tabular.load(tmp_path / name)
        assert np.allclose(arrays["train_images"], x) and arrays["train_labels"].tolist() == y.tolist()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("1,2,0\n3,0\n", "different lengths"),
        ("1,2,0\n3,x,1\n", "not a number"),
        ("1,2,0\n3,4,0\n", "at least 2"),
        ("nan,2,0\n3,4,1\n", "finite"),
    ],
)
def test_bad_csv_files(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        tabular.load(path)


def test_the_embedded_digits():
    data = load_data(DataConfig(source="digits", test_fraction=0.2, augment="none"))
    train, test = data.splits["train"], data.splits["test"]
    assert data.classes == [str(d) for d in range(10)]
    assert len(train) + len(test) == 1797 and train.images.shape[1] == 64
    assert 0 <= train.images.min() and train.images.max() == 16  # 4×4 blocks of a 32×32 bitmap, counted
