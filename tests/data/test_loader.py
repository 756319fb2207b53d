import shutil
from itertools import islice

import numpy as np
import pytest
import torch
from datasets import make_image_folder
from PIL import Image

from resnet import UsageError
from resnet.config import DataConfig
from resnet.data import loader as loaders
from resnet.data.augment import Normalize, lighting
from resnet.data.dataset import ArrayDataset, FileList
from resnet.data.folder import scan
from resnet.data.loader import FeatureLoader, StreamLoader, TensorLoader, fit_normalize, make_loader
from resnet.data.mixing import Mixing
from resnet.data.seeds import LIGHTING, epoch_permutation, generator
from resnet.data.sources import load_data

PLAIN = DataConfig(augment="none")
PAD_CROP_FLIP = DataConfig(augment="pad-crop-flip")


def _data(n=40):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ArrayDataset(images, torch.arange(n) % 4, ["a", "b", "c", "d"])


def test_batches_are_a_function_of_seed_and_step():
    a = TensorLoader(_data(), PAD_CROP_FLIP, batch_size=8, device="cpu", seed=1)
    b = TensorLoader(_data(), PAD_CROP_FLIP, batch_size=8, device="cpu", seed=1)
    late = b.batch(7)
    assert torch.equal(a.batch(7)[0], late[0])
    assert not torch.equal(a.batch(6)[0], late[0])
    c = TensorLoader(_data(), PAD_CROP_FLIP, batch_size=8, device="cpu", seed=2)
    assert not torch.equal(c.batch(7)[0], late[0])


def test_each_epoch_visits_every_image_once():
    loader = TensorLoader(_data(), PLAIN, batch_size=8, device="cpu")
    assert loader.steps_per_epoch == 5
    seen = torch.cat([loader.batch(s)[0][:, 0, 0, 0] for s in range(5)])
    assert sorted(seen.long().tolist()) == list(range(40))
    second = torch.cat([loader.batch(s)[0][:, 0, 0, 0] for s in range(5, 10)])
    assert not torch.equal(seen, second)  # reshuffled


@pytest.mark.parametrize("cfg", [PAD_CROP_FLIP, DataConfig(augment="pad-crop-flip", lighting=0.1)])
def test_ranks_split_the_global_batch(cfg):
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    data = ArrayDataset(images, torch.arange(40) % 4, ["a", "b", "c", "d"])
    kw = dict(device="cpu", seed=3)
    single = TensorLoader(data, cfg, batch_size=8, world=1, **kw)
    ranks = [TensorLoader(data, cfg, batch_size=4, rank=r, world=2, **kw) for r in (0, 1)]
    for step in range(7):
        x, y = single.batch(step)
        parts = [r.batch(step) for r in ranks]
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert torch.equal(torch.cat([p[0] for p in parts]), x)  # the same crops and flips too


def test_eval_batches_cover_the_split_in_order():
    loader = TensorLoader(_data(), PLAIN, batch_size=16, device="cpu")
    labels = torch.cat([y for _, y in loader.eval_batches()])
    assert torch.equal(labels, torch.arange(40) % 4)
    x, _ = next(loader.eval_batches(tta="10crop"))
    assert x.shape == (10, 16, 3, 4, 4)


def _stream(root, **cfg) -> StreamLoader:
    layout = scan(root)
    cfg = DataConfig(workers=0, **{"image_size": 16, "augment": "none", **cfg})
    return StreamLoader(FileList(layout, layout.splits["train"]), cfg, batch_size=6, device="cpu", seed=2)


@pytest.mark.parametrize("kind", ["tensor", "stream"])
def test_training_batches_carry_the_lighting_noise_of_their_step(kind, tmp_path):
    if kind == "tensor":
        lit, plain = (
            TensorLoader(_data(), DataConfig(augment="none", lighting=std), batch_size=8, device="cpu", seed=2)
            for std in (0.1, 0)
        )
    else:
        make_image_folder(tmp_path, {"train": 2}, size=(20, 16))
        lit, plain = _stream(tmp_path, lighting=0.1), _stream(tmp_path)
    for step, (x, y), (x0, y0) in zip(range(3), lit.batches(), plain.batches()):
        assert torch.equal(y, y0)
        noise = lighting(torch.zeros(len(y), 3, 1, 1), 0.1, generator(2, LIGHTING, step))
        assert torch.allclose(x - x0, noise.expand_as(x), rtol=0, atol=1e-4)  # an RGB shift per image and step
    assert all(torch.equal(a[0], b[0]) for a, b in zip(lit.eval_batches(), plain.eval_batches()))  # none in tests


def test_stream_evaluation_views_have_the_eval_size(tmp_path):
    make_image_folder(tmp_path, {"train": 2}, size=(50, 30))
    loader = _stream(tmp_path, eval_size=24, eval_resize=1.0)
    x, _ = next(loader.eval_batches())
    assert loader.eval_size == 24 and x.shape == (6, 3, 24, 24)
    image = Image.open(tmp_path / loader.files.files[0][0]).convert("RGB")
    crop = np.asarray(image.resize((40, 24), Image.BILINEAR).crop((8, 0, 32, 24)))  # shorter side 24, center
    assert torch.equal(x[0], torch.from_numpy(crop.copy()).permute(2, 0, 1).float())
    assert next(loader.batches())[0].shape == (6, 3, 16, 16)  # trained at 16, and normalized at 16
    assert StreamLoader.sample(loader.files, loader.cfg).shape[-1] == 16


def test_tensor_mode_refuses_another_eval_size():
    with pytest.raises(UsageError, match=r"data.eval_size=8 needs data.mode=stream .* evaluated as they are, 4×4"):
        TensorLoader(_data(), DataConfig(augment="none", eval_size=8), batch_size=8, device="cpu")
    TensorLoader(_data(), DataConfig(augment="none", eval_size=4), batch_size=8, device="cpu")  # their size: fine


def test_batch_larger_than_the_data():
    with pytest.raises(UsageError, match="larger than the 40 training images"):
        TensorLoader(_data(), PLAIN, batch_size=64, device="cpu")


def test_tensor_mode_refuses_resizing_augmentation():
    with pytest.raises(UsageError, match="data.mode=stream"):
        TensorLoader(_data(), DataConfig(augment="scale"), batch_size=8, device="cpu")


@pytest.mark.parametrize("augment", ["scale", "random-resized-crop"])
def test_stream_batches_are_deterministic_whatever_the_workers(tmp_path, augment):
    make_image_folder(tmp_path, {"train": 4, "test": 2}, size=(60, 44), suffix=".jpg")
    layout = scan(tmp_path)
    cfg = DataConfig(image_size=24, augment=augment, scale=[24, 40])
    batches = []
    for workers in (0, 2):
        cfg.workers = workers
        loader = StreamLoader(FileList(layout, layout.splits["train"]), cfg, batch_size=4, device="cpu", seed=5)
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
    loader = StreamLoader(FileList(layout, layout.splits["train"]), cfg, batch_size=6, device="cpu")
    x, y = next(loader.batches())
    assert x.shape == (6, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]


# -- one factory: the data's kind picks the loader; the normalization is fitted before, to the split ---


def test_make_loader_takes_the_normalization_fitted_to_decoded_training_images(image_folder):
    cfg = DataConfig(source=str(image_folder), normalize="pixel-mean")
    data = load_data(cfg)
    normalize = fit_normalize(data, "train", cfg)
    expected = Normalize.fit(data.splits["train"].images, per_pixel=True)
    assert normalize.mean.shape == (3, 32, 32) and torch.equal(normalize.mean, expected.mean)
    assert torch.equal(normalize.std, expected.std)
    loader = make_loader(data, "train", cfg, train=True, batch_size=8, device="cpu", normalize=normalize)
    assert isinstance(loader, TensorLoader) and torch.equal(loader.normalize.mean, expected.mean)
    given = Normalize(torch.full((3, 1, 1), 100.0), torch.full((3, 1, 1), 50.0))
    test = make_loader(data, "test", cfg, train=False, batch_size=64, device="cpu", normalize=given)
    x, _ = next(test.eval_batches())
    raw = data.splits["test"].images[: len(x)].float()
    assert torch.allclose(x, (raw - 100) / 50) and test.eval_resize == 1.0


def test_make_loader_streams_file_lists_fitted_on_a_sample(tmp_path):
    make_image_folder(tmp_path, {"train": 6, "test": 2}, size=(70, 70), suffix=".png")
    cfg = DataConfig(source=str(tmp_path), image_size=24, workers=0, eval_resize=1.25)
    data = load_data(cfg)
    assert isinstance(data.splits["train"], FileList) and data.kind == "files"
    sample = StreamLoader.sample(data.splits["train"], cfg)
    assert sample.shape == (18, 3, 24, 24) and sample.dtype == torch.uint8  # every file: fewer than the sample
    normalize, expected = fit_normalize(data, "train", cfg), Normalize.fit(sample, per_pixel=False)
    assert torch.equal(normalize.mean, expected.mean) and torch.equal(normalize.std, expected.std)
    loader = make_loader(data, "train", cfg, train=True, batch_size=4, device="cpu", normalize=normalize)
    assert isinstance(loader, StreamLoader) and loader.eval_resize == 1.25
    x, _ = next(loader.batches())
    assert x.shape == (4, 3, 24, 24) and abs(x.mean().item()) < 1.5  # normalized


def test_feature_vectors_get_their_loader_and_a_normalization_per_feature(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "t.npy", np.column_stack([rng.normal(5, 3, size=(60, 4)), np.arange(60) % 3]))
    cfg = DataConfig(source=str(tmp_path / "t.npy"), augment="none")
    data = load_data(cfg)
    normalize = fit_normalize(data, "train", cfg)
    assert data.kind == "features" and normalize.mean.shape == (4,) and normalize.std.shape == (4,)
    loader = make_loader(data, "train", cfg, train=True, batch_size=8, device="cpu", normalize=normalize)
    x, _ = loader.batch(0)
    assert isinstance(loader, FeatureLoader) and x.shape == (8, 4)
    first = data.splits["train"].images[epoch_permutation(data.size("train"), seed=0, epoch=0)[:8]]
    assert torch.allclose(x, (first - normalize.mean) / normalize.std)


# -- random erasing in both loaders, after the normalization ----------------------------------------

ERASE = {"random_erase": 1.0, "erase_area": [0.2, 0.3], "normalize": "channel"}


def _erased(x):
    return (x == 0).all(1).float().mean((1, 2))  # the share of each image's pixels at 0 in every channel


def test_tensor_batches_are_erased_after_normalization_by_seed_and_step():
    images = torch.randint(1, 256, (40, 3, 16, 16), dtype=torch.uint8)
    data = ArrayDataset(images, torch.arange(40) % 4, ["a", "b", "c", "d"])
    norm = Normalize(torch.zeros(3, 1, 1), torch.ones(3, 1, 1))
    loader = TensorLoader(data, DataConfig(augment="none", **ERASE), batch_size=8, device="cpu", normalize=norm)
    x, _ = loader.batch(3)
    assert ((_erased(x) > 0.15) & (_erased(x) < 0.35)).all()
    assert torch.equal(loader.batch(3)[0], x) and not torch.equal(loader.batch(4)[0], x)
    plain = TensorLoader(data, DataConfig(augment="none"), batch_size=8, device="cpu", normalize=norm).batch(3)[0]
    assert torch.equal(x[x != 0], plain[x != 0])  # the rest of each image is untouched


def test_streamed_batches_are_erased_on_the_device_by_step(tmp_path):
    make_image_folder(tmp_path, {"train": 4}, size=(20, 20))
    layout = scan(tmp_path)
    cfg = DataConfig(image_size=16, augment="flip", workers=0, **ERASE)
    loader = StreamLoader(FileList(layout, layout.splits["train"]), cfg, batch_size=4, device="cpu")
    batches = [x for x, _ in islice(loader.batches(), 4)]
    assert all(((_erased(x) > 0.15) & (_erased(x) < 0.35)).all() for x in batches)
    assert torch.equal(next(loader.batches(start=3))[0], batches[3])  # resumed: the same erasing


def test_feature_vectors_refuse_image_augmentations_but_not_mixup():
    data = ArrayDataset(torch.randn(40, 5), torch.arange(40) % 4, ["a", "b", "c", "d"])
    for key, value in (("augment", "flip"), ("random_erase", 0.5), ("cutmix", 1.0), ("auto_augment", "randaugment")):
        overrides = {"augment": "none", key: value}
        with pytest.raises(UsageError, match=f"data.{key}={value} needs images; these data are feature vectors"):
            FeatureLoader(data, DataConfig(**overrides), batch_size=8, device="cpu")
        FeatureLoader(data, DataConfig(**overrides), batch_size=8, device="cpu", train=False)  # evaluated: no matter
    with pytest.raises(UsageError, match=r"data.lighting shifts RGB colors: it needs RGB images \(data.lighting=0\)"):
        FeatureLoader(data, DataConfig(augment="none", lighting=0.1), batch_size=8, device="cpu")
    FeatureLoader(data, DataConfig(augment="none", mixup=0.2), batch_size=8, device="cpu")


def test_an_evaluation_loader_refuses_only_what_evaluation_uses():
    TensorLoader(_data(), DataConfig(augment="scale", lighting=0.1), batch_size=64, device="cpu", train=False)
    with pytest.raises(UsageError, match="data.eval_size=8 needs data.mode=stream"):
        TensorLoader(_data(), DataConfig(eval_size=8), batch_size=64, device="cpu", train=False)


# -- mixup and cutmix ---------------------------------------------------------------------------------


def _batch(n=8, classes=4):
    return torch.randn(n, 3, 12, 10), torch.arange(n) % classes


def test_mixup_blends_each_image_and_label_with_its_neighbours():
    mixing = Mixing(DataConfig(mixup=0.4), classes=4, seed=1)
    x, y = _batch()
    for step in range(3):
        kind, lam, _ = mixing.draw(step, 12, 10)
        out, targets = mixing(x, y, step)
        assert kind == "mixup" and 0 < lam < 1
        for i, j in ((0, 1), (1, 0), (6, 7)):
            assert torch.allclose(out[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)
            expected = torch.zeros(4)
            expected[y[i]] += lam
            expected[y[j]] += 1 - lam
            assert torch.allclose(targets[i], expected)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    odd, _ = mixing(x[:7], y[:7], 0)
    assert torch.allclose(odd[6], x[6])  # an odd batch's last image has no neighbour: itself


def test_cutmix_pastes_the_neighbours_box_and_lambda_is_its_complement():
    mixing = Mixing(DataConfig(cutmix=1.0), classes=4, seed=2)
    x, y = _batch()
    lams = []
    for step in range(20):
        kind, lam, (top, bottom, left, right) = mixing.draw(step, 12, 10)
        out, targets = mixing(x, y, step)
        pasted = (out != x).all(1)  # (N, H, W): pixels that came from the neighbour
        assert kind == "cutmix" and torch.allclose(pasted.float().mean((1, 2)), torch.full((8,), 1 - lam))
        assert pasted[:, top:bottom, left:right].all()
        assert torch.equal(out[0][:, pasted[0]], x[1][:, pasted[0]]) and torch.equal(
            out[1][:, ~pasted[1]], x[1][:, ~pasted[1]]
        )
        assert torch.allclose(targets[0, y[0]], torch.tensor(lam)) and torch.allclose(
            targets[0, y[1]], torch.tensor(1 - lam)
        )
        lams.append(lam)
    assert len(set(lams)) > 10  # λ of boxes of whole pixels


def test_batches_are_switched_between_mixup_and_cutmix_and_some_left_alone():
    cfg = DataConfig(mixup=0.2, cutmix=1.0, mix_prob=0.8, switch_prob=0.5)
    kinds = [Mixing(cfg, 4, seed=0).draw(step, 12, 10)[0] for step in range(300)]
    assert 35 < kinds.count("none") < 85  # 20% of the batches unmixed
    assert 90 < kinds.count("mixup") < 150 and 90 < kinds.count("cutmix") < 150  # the others by either, half and half
    only_cut = {Mixing(DataConfig(mixup=0.2, cutmix=1.0, switch_prob=1.0), 4, 0).draw(s, 12, 10)[0] for s in range(50)}
    assert only_cut == {"cutmix"}
    x, y = _batch()
    off = Mixing(DataConfig(), 4, seed=0)
    assert off(x, y, 5) == (x, y) and off.draw(5, 12, 10) == ("none", 1.0, None)


def test_mixing_is_a_function_of_seed_and_step_for_every_process():
    cfg = DataConfig(mixup=0.2, cutmix=1.0)
    x, y = _batch()
    first, resumed = Mixing(cfg, 4, seed=3), Mixing(cfg, 4, seed=3)
    run = [first(x, y, step) for step in range(8)]
    again = resumed(x, y, 7)  # a resumed run: straight to step 7
    assert torch.equal(again[0], run[7][0]) and torch.equal(again[1], run[7][1])
    assert not torch.equal(Mixing(cfg, 4, seed=4)(x, y, 7)[0], again[0])
    halves = [first(x[i : i + 4], y[i : i + 4], 7) for i in (0, 4)]  # two processes' slices
    assert torch.equal(torch.cat([h[0] for h in halves]), again[0])
    assert torch.equal(torch.cat([h[1] for h in halves]), again[1])


def test_the_workers_queue_is_sized_to_the_shared_memory(monkeypatch):
    batch = 256 * 3 * 224 * 224  # an ImageNet batch of uint8 views: 38.5 MB

    def free(gib):
        monkeypatch.setattr(loaders.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(0, 0, int(gib * 2**30)))

    free(64)  # room for 15 workers × 4 batches in half of it
    assert loaders.prefetch_factor(15, batch) == loaders.PREFETCH == 4
    free(3)  # 1.5 GiB for the queue: 2 batches per worker
    assert loaders.prefetch_factor(15, batch) == 1536 * 2**20 // (15 * batch) == 2
    free(0.064)  # a container's 64 MB: at least one batch each all the same
    assert loaders.prefetch_factor(15, batch) == 1
    assert loaders.prefetch_factor(0, batch) is None  # no workers: decoded in the loop


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixing_keeps_a_channels_last_batch_channels_last(kind):
    # an NCHW batch in a channels_last run would cost the compiled step a second graph and slower convolutions
    mixing = Mixing(DataConfig(**{kind: 1.0}), classes=4, seed=1)
    x, y = _batch()
    out, _ = mixing(x.contiguous(memory_format=torch.channels_last), y, 0)
    assert mixing.draw(0, 12, 10)[0] == kind
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_no_more_decoding_workers_than_usable_cpus(monkeypatch):
    from resnet.data import loader

    monkeypatch.setattr(loader.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert [loader.usable_workers(n) for n in (0, 1, 2, 8)] == [0, 1, 2, 2]  # data.workers=8 on 2 cores: 2
