import csv
import shutil

import numpy as np
import pytest
import torch

import resnet
from resnet import UsageError
from resnet.cli import main
from resnet.features import extract_features


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_class_folders(trained_run, image_folder):
    f = extract_features(trained_run / "best.pt", image_folder, batch_size=32, device="cpu")
    assert f.features.shape == (150, 64) and f.features.dtype == np.float32
    assert f.paths == sorted(f.paths) and f.paths[0] == "test/blue/000.png" and f.paths[-1] == "train/red/039.png"
    assert f.labels == [p.split("/")[1] for p in f.paths] and set(f.labels) == {"blue", "green", "red"}
    # penultimate features: the classifier applied to them gives `resnet predict`'s answer
    classifier = resnet.load(trained_run / "best.pt")
    picks = [0, 77, 149]
    with torch.no_grad():
        logits = classifier.model.fc(torch.from_numpy(f.features[picks]))
    predicted = classifier.predict([image_folder / f.paths[i] for i in picks], topk=1)
    assert [classifier.classes[i] for i in logits.argmax(1)] == [p[0][0] for p in predicted]
    probabilities = logits.softmax(1).max(1).values.tolist()
    assert probabilities == pytest.approx([p[0][1] for p in predicted], abs=1e-5)


def test_batching_does_not_change_the_features(trained_run, image_folder):
    whole = extract_features(trained_run / "best.pt", image_folder / "test", batch_size=64, device="cpu")
    pieces = extract_features(trained_run / "best.pt", image_folder / "test", batch_size=7, device="cpu")
    assert whole.paths == pieces.paths and len(whole.paths) == 30
    np.testing.assert_allclose(whole.features, pieces.features, rtol=1e-5, atol=1e-5)


def test_flat_folder_has_no_labels_and_save_writes_both_files(trained_run, image_folder, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("blue/001.png", "red/002.png", "green/003.png"):
        shutil.copy(image_folder / "test" / name, flat / name.replace("/", "-"))
    f = extract_features(trained_run / "best.pt", flat, device="cpu")
    assert f.labels is None and f.paths == ["blue-001.png", "green-003.png", "red-002.png"]
    array, sidecar = f.save(tmp_path / "out" / "feats.npy")
    assert np.array_equal(np.load(array), f.features) and sidecar == tmp_path / "out" / "feats.csv"
    assert read_csv(sidecar) == [["path"], ["blue-001.png"], ["green-003.png"], ["red-002.png"]]
    with pytest.raises(UsageError, match="must end in .npy"):
        f.save(tmp_path / "feats.txt")


def _folder_with_a_bad_image(image_folder, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(image_folder / "test", folder)
    (folder / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_unreadable_image(trained_run, image_folder, tmp_path):
    folder = _folder_with_a_bad_image(image_folder, tmp_path)
    with pytest.raises(UsageError, match="red/broken.png: "):
        extract_features(trained_run / "best.pt", folder, device="cpu")
    f = extract_features(trained_run / "best.pt", folder, device="cpu", skip_bad_images=True)
    assert f.skipped == ["red/broken.png"] and len(f.paths) == 30 and f.features.shape == (30, 64)


def test_cli(trained_run, image_folder, tmp_path, capsys):
    out = tmp_path / "feats.npy"
    args = ["features", str(trained_run / "best.pt"), "--data", str(image_folder / "test"), "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    assert f"wrote {out} (30×64 float32) and {tmp_path / 'feats.csv'} with the labels of 3 class folders" in (
        capsys.readouterr().out
    )
    rows = read_csv(tmp_path / "feats.csv")
    assert rows[0] == ["path", "label"] and rows[1] == ["blue/000.png", "blue"] and len(rows) == 31
    assert np.load(out).shape == (30, 64)
    # a failing run leaves the earlier outputs as they were
    before = out.read_bytes()
    bad = _folder_with_a_bad_image(image_folder, tmp_path)
    assert main(["features", str(trained_run / "best.pt"), "--data", str(bad), "--out", str(out)]) == 2
    assert "broken.png" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["features", str(trained_run / "best.pt"), "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "expected a folder of images" in capsys.readouterr().err
    assert main(["features", str(trained_run / "best.pt"), "--data", str(bad), "--out", str(tmp_path / "f.txt")]) == 2
    assert "f.txt: the features file must end in .npy" in capsys.readouterr().err


def test_cli_reads_the_shipped_weights_by_name(image_folder, tmp_path, capsys):
    from resnet.models.weights import weights_path

    out, folder = tmp_path / "f.npy", str(image_folder / "test")
    assert main(["features", "--model", "resnet20", "--weights", "cifar10", "--data", folder, "--out", str(out)]) == 0
    features = np.load(out)
    assert features.shape == (30, 64)
    # its classifier on the features (float32): predict's answer in float32, on any CPU
    shipped = resnet.load(weights_path("resnet20", "cifar10"), precision="fp32")
    with torch.no_grad():
        probabilities = shipped.model.fc(torch.from_numpy(features[:1])).softmax(1)[0]
    [[(name, probability)]] = shipped.predict([image_folder / "test" / "blue" / "000.png"], topk=1)
    assert shipped.classes[int(probabilities.argmax())] == name
    assert float(probabilities.max()) == pytest.approx(probability, abs=1e-5)
    assert main(["features", "--data", folder, "--out", str(out)]) == 2
    assert "name a checkpoint to read, or --model NAME --weights cifar10" in capsys.readouterr().err
