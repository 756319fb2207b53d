import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from resnet import UsageError, checkpoint, evaluate, load
from resnet.data.images import decode_image as load_image
from resnet.inference import SMALL_JOB
from resnet.train.evaluate import evaluate_batches


def test_load_gives_the_trained_network(trained_run):
    classifier = load(trained_run / "best.pt")
    assert classifier.classes == ["blue", "green", "red"] and classifier.model_name == "resnet20"
    assert not classifier.model.training and classifier.image_size == 32


def _test_images(image_folder):
    """The 30 test images of the color folder, with their labels (class indices)."""
    classes = ["blue", "green", "red"]
    paths = [p for c in classes for p in sorted((image_folder / "test" / c).iterdir())]
    return paths, torch.tensor([classes.index(p.parent.name) for p in paths])


def test_evaluate_reports_errors_per_class_and_confusion(trained_run, image_folder, tmp_path):
    m = evaluate(trained_run / "last.pt", out=tmp_path, device="cpu")
    # the confusion matrix and the error are those of the network's predictions, image by image
    paths, labels = _test_images(image_folder)
    classifier = load(trained_run / "last.pt")
    predicted = torch.tensor([classifier.classes.index(classifier.predict([p], topk=1)[0][0][0]) for p in paths])
    assert m["count"] == 30 and m["confusion"] == confusion_of(labels, predicted)
    assert m["top1_error"] == pytest.approx((predicted != labels).double().mean().item())
    assert m["top5_error"] == 0  # three classes: always in the top 5
    assert m["per_class_accuracy"] == pytest.approx([m["confusion"][i][i] / 10 for i in range(3)])
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert m["top1_error"] == pytest.approx(rows[-1]["test_error"])  # the same number the run logged
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.json", "confusion.csv", "confusion.png"}
    assert (tmp_path / "confusion.csv").read_text().splitlines()[0] == "true \\ predicted,blue,green,red"


@pytest.mark.parametrize("tta", ["flip", "10crop"])
def test_test_time_augmentation_runs_on_a_checkpoint(trained_run, tta):
    m = evaluate(trained_run / "last.pt", tta=tta, device="cpu")
    assert m["count"] == 30 and m["tta"] == tta and 0 <= m["top1_error"] <= 1


@pytest.mark.parametrize("tta", ["flip", "10crop"])
def test_test_time_augmentation_averages_the_probabilities_of_the_views(tta):
    # a linear model of the pixels: a mirror image (or another crop) has other outputs
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).eval()
    labels = torch.randint(0, 3, (8,))
    if tta == "flip":
        x = torch.randn(8, 3, 4, 4)
        views = torch.stack([x, x.flip(3)])
    else:
        x = views = torch.randn(10, 8, 3, 4, 4)  # what the loaders give: ten views of each image
    with torch.no_grad():
        probs = torch.stack([model(v).softmax(1) for v in views])
    m = evaluate_batches(model, [(x, labels)], 3, tta=tta)
    assert m["loss"] == pytest.approx(F.nll_loss(probs.mean(0).log(), labels).item(), rel=1e-5)
    assert m["loss"] != pytest.approx(F.nll_loss(probs[0].log(), labels).item(), rel=1e-3)  # the views matter
    assert m["confusion"] == confusion_of(labels, probs.mean(0).argmax(1))


def confusion_of(labels: torch.Tensor, predicted: torch.Tensor) -> list[list[int]]:
    confusion = [[0] * 3 for _ in range(3)]
    for true, guess in zip(labels.tolist(), predicted.tolist()):
        confusion[true][guess] += 1
    return confusion


def test_predict_ranks_the_classes(trained_run, image_folder):
    classifier = load(trained_run / "best.pt")
    images = sorted((image_folder / "test" / "red").iterdir())[:4]
    results = classifier.predict(images, topk=2)
    assert len(results) == 4 and all(len(r) == 2 and r[0][1] >= r[1][1] for r in results)
    assert sum(r[0][0] == "red" for r in results) >= 3


def test_checkpoint_of_another_shape_is_refused(trained_run, tmp_path):
    state = checkpoint.load(trained_run / "last.pt")
    state["model_name"] = "resnet32"
    del state["format"], state["version"]
    checkpoint.save(state, tmp_path / "x.pt")
    with pytest.raises(UsageError, match="weights do not fit resnet32"):
        load(tmp_path / "x.pt")


def test_evaluate_on_data_of_other_classes(trained_run):
    with pytest.raises(UsageError, match="are not the checkpoint's"):
        evaluate(trained_run / "last.pt", data="embedded", device="cpu")


def test_unknown_split(trained_run):
    with pytest.raises(UsageError, match="no 'val' split"):
        evaluate(trained_run / "last.pt", split="val", device="cpu")


def test_outputs_do_not_depend_on_the_batch(trained_run, image_folder):
    classifier = load(trained_run / "last.pt")
    images = sorted((image_folder / "test" / "blue").iterdir())[:3]
    together = classifier.predict(images, topk=3)
    alone = [classifier.predict([im], topk=3)[0] for im in images]
    for a, b in zip(together, alone):
        assert [c for c, _ in a] == [c for c, _ in b]
        assert torch.allclose(torch.tensor([p for _, p in a]), torch.tensor([p for _, p in b]), atol=1e-5)


def test_predict_on_a_feature_vector_model_says_what_to_do(tmp_path):
    from resnet import train

    train(
        "residual_mlp",
        "digits",
        "mlp",
        tmp_path,
        {"batch_size": 32, "log.evals": 1, "model_options": {"blocks": 0}},
        iters=2,
        progress=False,
    )
    classifier = load(tmp_path / "last.pt")
    with pytest.raises(UsageError, match="reads feature vectors, not images"):
        classifier.predict([tmp_path / "curves.png"])
    x = classifier.normalize(torch.zeros(2, 64))
    assert classifier.model(x).shape == (2, 10)


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime", "torch"])
def test_every_engine_evaluates_and_predicts_as_the_model_does(trained_run, image_folder, engine):
    pytest.importorskip(engine)
    eager = evaluate(trained_run / "last.pt", device="cpu", engine="torch")  # 30 images: uncompiled torch
    m = evaluate(trained_run / "last.pt", device="cpu", engine=engine)
    assert m["engine"] == engine and m["count"] == 30
    assert m["precision"] == ("fp32" if engine == "onnxruntime" else eager["precision"])
    assert m["confusion"] == eager["confusion"]  # the same prediction for every image
    classifier = load(trained_run / "best.pt", engine=engine)
    images = sorted((image_folder / "test" / "red").iterdir())[:4]
    got = classifier.predict(images, topk=3)
    assert classifier.inference(len(images)).engine == engine  # a named engine is used even for 4 images
    with torch.no_grad():
        probs = classifier.model(classifier.preprocess([load_image(i) for i in images])).softmax(1)
    for row, p in zip(got, probs):
        assert [c for c, _ in row] == [classifier.classes[i] for i in p.argsort(descending=True).tolist()]
        assert [q for _, q in row] == pytest.approx(sorted(p.tolist(), reverse=True), abs=0.02)


def test_auto_runs_small_jobs_uncompiled_and_large_ones_on_the_fastest_engine(trained_run, monkeypatch):
    from resnet import optimize

    monkeypatch.setattr(optimize, "_installed", lambda package: package == "openvino")
    classifier = load(trained_run / "best.pt")
    small, large = classifier.inference(1), classifier.inference(SMALL_JOB)
    assert small.engine == "torch" and large.engine == "openvino"
    assert classifier.inference(2) is small  # built once


def test_the_torch_engine_compiles_only_a_job_worth_it(trained_run, monkeypatch):
    import resnet
    from resnet import inference, optimize

    monkeypatch.setattr(optimize, "_installed", lambda package: False)  # auto is the torch engine here
    auto = load(trained_run / "best.pt")
    assert auto.inference(SMALL_JOB).engine == "torch" and set(auto._engines) == {("auto", False)}  # 1e10 MACs
    classifier = load(trained_run / "best.pt", engine="torch")
    classes = len(classifier.classes)
    assert classifier.image_size == 32 and classifier.macs() == resnet.describe("resnet20", num_classes=classes)["macs"]
    monkeypatch.setattr(inference, "COMPILE_MACS", 10 * classifier.macs())
    small, large = classifier.inference(9), classifier.inference(10)  # compiled at its first call, not here
    assert small.engine == large.engine == "torch" and small is not large
    assert set(classifier._engines) == {("torch", False), ("torch", True)}


def test_unknown_engine_is_refused(trained_run):
    with pytest.raises(UsageError, match="unknown inference engine 'tpu'"):
        load(trained_run / "best.pt", engine="tpu")


# -- the evaluation size (FixRes) and §3.4's multi-scale testing, on streamed files ---------------------


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    """resnet20 trained 2 iterations on 24×24 crops of streamed 40×30 images, evaluated on 32×32 crops."""
    from datasets import QUICK, make_image_folder

    from resnet import train

    root = make_image_folder(tmp_path_factory.mktemp("wide"), {"train": 6, "test": 3}, size=(40, 30))
    settings = {
        **QUICK,
        "batch_size": 6,
        "precision": "fp32",
        "data.mode": "stream",
        "data.image_size": 24,
        "data.eval_size": 32,
        "data.eval_resize": 1.0,
    }
    out = tmp_path_factory.mktemp("stream-run")
    train("resnet20", str(root), "cifar-paper", out, settings, iters=2, device="cpu", progress=False)
    return out, root


def _by_hand(classifier, path, sides, crop=None):
    """The model's probabilities for the image at `path`, its shorter side resized to each of `sides`
    (and center-cropped to `crop`), averaged with those of the mirror images unless cropped."""
    image = Image.open(path).convert("RGB")
    probs = []
    for side in sides:
        w, h = image.size
        view = image.resize((round(w * side / min(w, h)), round(h * side / min(w, h))), Image.BILINEAR)
        if crop:
            left, top = (view.width - crop) // 2, (view.height - crop) // 2
            view = view.crop((left, top, left + crop, top + crop))
        x = classifier.normalize(torch.from_numpy(np.array(view)).permute(2, 0, 1)[None])
        with torch.no_grad():
            probs += [classifier.model(v).softmax(1) for v in ([x] if crop else [x, x.flip(3)])]
    return torch.cat(probs).mean(0)


def _loss_and_confusion(classifier, root, sides, crop=None):
    paths, labels = _test_images(root)
    probs = torch.stack([_by_hand(classifier, p, sides, crop) for p in paths])
    return F.nll_loss(probs.log(), labels).item(), confusion_of(labels, probs.argmax(1))


def test_the_eval_size_is_what_training_and_eval_evaluate_on(stream_run):
    out, root = stream_run
    classifier = load(out / "last.pt")
    assert classifier.image_size == 32  # what predict and the exports are given
    m = evaluate(out / "last.pt", device="cpu")
    loss, confusion = _loss_and_confusion(classifier, root, [32], crop=32)
    tolerance = 1e-5 if m["precision"] == "fp32" else 3e-2
    assert m["size"] == 32 and m["loss"] == pytest.approx(loss, rel=tolerance)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["test_loss"] == pytest.approx(loss, rel=1e-5)  # the run evaluated the same views
    assert evaluate(out / "last.pt", device="cpu", size=24)["loss"] != pytest.approx(m["loss"], rel=1e-3)


def test_multiscale_testing_averages_the_whole_images_and_their_mirrors_over_the_scales(stream_run):
    out, root = stream_run
    m = evaluate(out / "last.pt", tta="multiscale", device="cpu")
    sides = [round(side * 24 / 224) for side in (224, 256, 384, 480, 640)]  # the paper's, for 24-pixel crops
    loss, confusion = _loss_and_confusion(load(out / "last.pt"), root, sides)
    assert m["scales"] == sides == [24, 27, 41, 51, 69] and (m["engine"], m["precision"]) == ("torch", "fp32")
    assert m["loss"] == pytest.approx(loss, rel=1e-5) and m["confusion"] == confusion
    assert evaluate(out / "last.pt", tta="multiscale", scales=[30], device="cpu")["scales"] == [30]


def test_multiscale_testing_needs_streamed_files_and_takes_no_crop_size(trained_run, stream_run):
    with pytest.raises(UsageError, match="multi-scale testing resizes whole images: it needs image files streamed"):
        evaluate(trained_run / "last.pt", tta="multiscale", device="cpu")
    with pytest.raises(UsageError, match="not crops of one size"):
        evaluate(stream_run[0] / "last.pt", tta="multiscale", size=32, device="cpu")
    with pytest.raises(UsageError, match="scales are the shorter sides of multi-scale testing"):
        evaluate(stream_run[0] / "last.pt", tta="10crop", scales=[32], device="cpu")


def test_predict_takes_a_path_a_list_an_image_an_array_or_a_tensor(trained_run, image_folder):
    classifier = load(trained_run / "best.pt")
    paths = sorted((image_folder / "test" / "red").iterdir())[:2]
    expected = classifier.predict([str(p) for p in paths], topk=3)
    image = load_image(paths[0])
    pixels = np.stack([np.asarray(load_image(p)) for p in paths])  # N×H×W×C uint8
    tensors = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255  # N×C×H×W in [0, 1]
    for one in (str(paths[0]), paths[0], image, pixels[0], pixels[0] / 255.0, tensors[0], [image]):
        assert _close(classifier.predict(one, topk=3), expected[:1]), type(one)
    for several in (paths, pixels, tensors, [pixels[0], tensors[1]]):
        assert _close(classifier.predict(several, topk=3), expected), type(several)
    with pytest.raises(UsageError, match="not of shape"):
        classifier.predict(np.zeros((4, 5)))


def _close(results, expected) -> bool:
    return [[c for c, _ in r] for r in results] == [[c for c, _ in r] for r in expected] and np.allclose(
        [[p for _, p in r] for r in results], [[p for _, p in r] for r in expected], atol=1e-5
    )


def test_the_safetensors_export_is_used_as_its_checkpoint(trained_run, image_folder, tmp_path):
    from resnet.export import export_model

    exported = export_model(trained_run / "best.pt", format="safetensors", out=tmp_path / "r20.safetensors").path
    images = sorted((image_folder / "test" / "red").iterdir())[:3]
    assert _close(load(exported).predict(images), load(trained_run / "best.pt").predict(images))
    from_export, from_checkpoint = (evaluate(p, device="cpu") for p in (exported, trained_run / "best.pt"))
    assert from_export["data"] == from_checkpoint["data"] == str(image_folder)
    assert from_export["top1_error"] == from_checkpoint["top1_error"]
    assert np.allclose(from_export["confusion"], from_checkpoint["confusion"])
