import pytest
import torch
from datasets import make_image_folder

from resnet import UsageError
from resnet.config import DataConfig
from resnet.data.augment import Normalize
from resnet.data.dataset import ArrayDataset
from resnet.data.folder import scan
from resnet.data.loader import StreamLoader, TensorLoader

IDENTITY = Normalize(torch.zeros(3, 1, 1), torch.ones(3, 1, 1))


def _data(n=40):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ArrayDataset(images, torch.arange(n) % 4, ["a", "b", "c", "d"])


def test_batches_are_a_function_of_seed_and_step():
    a = TensorLoader(_data(), batch_size=8, device="cpu", normalize=IDENTITY, augment="pad-crop-flip", seed=1)
    b = TensorLoader(_data(), batch_size=8, device="cpu", normalize=IDENTITY, augment="pad-crop-flip", seed=1)
    late = b.batch(7)
    assert torch.equal(a.batch(7)[0], late[0])
    assert not torch.equal(a.batch(6)[0], late[0])
    c = TensorLoader(_data(), batch_size=8, device="cpu", normalize=IDENTITY, augment="pad-crop-flip", seed=2)
    assert not torch.equal(c.batch(7)[0], late[0])


def test_each_epoch_visits_every_image_once():
    loader = TensorLoader(_data(), batch_size=8, device="cpu", normalize=IDENTITY)
    assert loader.steps_per_epoch == 5
    seen = torch.cat([loader.batch(s)[0][:, 0, 0, 0] for s in range(5)])
    assert sorted(seen.long().tolist()) == list(range(40))
    second = torch.cat([loader.batch(s)[0][:, 0, 0, 0] for s in range(5, 10)])
    assert not torch.equal(seen, second)  # reshuffled


def test_ranks_split_the_global_batch():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    data = ArrayDataset(images, torch.arange(40) % 4, ["a", "b", "c", "d"])
    kw = dict(device="cpu", normalize=IDENTITY, augment="pad-crop-flip", seed=3)
    single = TensorLoader(data, batch_size=8, world=1, **kw)
    ranks = [TensorLoader(data, batch_size=4, rank=r, world=2, **kw) for r in (0, 1)]
    for step in range(7):
        x, y = single.batch(step)
        parts = [r.batch(step) for r in ranks]
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert torch.equal(torch.cat([p[0] for p in parts]), x)  # the same crops and flips too


def test_eval_batches_cover_the_split_in_order():
    loader = TensorLoader(_data(), batch_size=16, device="cpu", normalize=IDENTITY)
    labels = torch.cat([y for _, y in loader.eval_batches()])
    assert torch.equal(labels, torch.arange(40) % 4)
    x, _ = next(loader.eval_batches(tta="10crop"))
    assert x.shape == (10, 16, 3, 4, 4)


def test_batch_larger_than_the_data():
    with pytest.raises(UsageError, match="larger than the 40 training images"):
        TensorLoader(_data(), batch_size=64, device="cpu", normalize=IDENTITY)


def test_tensor_mode_refuses_resizing_augmentation():
    with pytest.raises(UsageError, match="data.mode=stream"):
        TensorLoader(_data(), batch_size=8, device="cpu", normalize=IDENTITY, augment="scale")


@pytest.mark.parametrize("augment", ["scale", "random-resized-crop"])
def test_stream_batches_are_deterministic_whatever_the_workers(tmp_path, augment):
    make_image_folder(tmp_path, {"train": 4, "test": 2}, size=(60, 44), suffix=".jpg")
    layout = scan(tmp_path)
    cfg = DataConfig(image_size=24, augment=augment, scale=[24, 40])
    batches = []
    for workers in (0, 2):
        cfg.workers = workers
        loader = StreamLoader(
            layout, layout.splits["train"], cfg, batch_size=4, device="cpu", normalize=IDENTITY, seed=5
        )
        it = loader.batches(start=2)
        batches.append([next(it) for _ in range(3)])
    for (x0, y0), (x1, y1) in zip(*batches):
        assert x0.shape == (4, 3, 24, 24) and torch.equal(x0, x1) and torch.equal(y0, y1)
    evals = list(loader.eval_batches(batch_size=5, tta="10crop"))
    assert evals[0][0].shape == (10, 5, 3, 24, 24) and sum(len(y) for _, y in evals) == 12


@pytest.mark.parametrize("augment", ["pad-crop-flip", "flip", "none"])
def test_stream_augmentations(tmp_path, augment):
    make_image_folder(tmp_path, {"train": 2}, size=(50, 30))
    layout = scan(tmp_path)
    cfg = DataConfig(image_size=16, augment=augment, workers=0)
    loader = StreamLoader(layout, layout.splits["train"], cfg, batch_size=6, device="cpu", normalize=IDENTITY)
    x, y = next(loader.batches())
    assert x.shape == (6, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]
