"""The weights this package ships: packed from a finished run by `export.ship`, loaded by name."""

import json

import pytest
import torch
from datasets import QUICK

import resnet
from resnet import UsageError, create_model
from resnet.cli import main
from resnet.export import ship
from resnet.inference import evaluate
from resnet.models import weights
from resnet.models.weights import SHIPPED_DIR, read_metadata


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A resnet20 trained (briefly) on the embedded CIFAR-10 subset, to its end."""
    out = tmp_path_factory.mktemp("run")
    resnet.train("resnet20", None, "cifar-paper", out, QUICK, iters=4, progress=False)
    return out


@pytest.fixture(scope="module")
def shipped(run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return ship(run, out=folder / "weights" / "resnet20-cifar10.safetensors")  # a folder not made yet


def test_ship_records_what_the_file_gives(run, shipped):
    meta = read_metadata(shipped)
    assert meta["recipe"] == "cifar-paper" and meta["data"] == "embedded" and meta["iterations"] == 4
    assert meta["model_name"] == "resnet20" and len(meta["classes"]) == 10 and "commit" in meta
    measured = evaluate(shipped, data="embedded", model="resnet20", device="cpu", engine="torch")
    assert meta["subset_error"] == meta["test_error"] == measured["top1_error"]
    # stored in half precision only where the checkpoint's own predictions are unchanged by it
    checkpoint = evaluate(run / "last.pt", data="embedded", device="cpu", engine="torch")
    assert meta["storage"] in ("float16", "float32") and checkpoint["confusion"] == measured["confusion"]


def test_shipped_weights_load_by_name(run, shipped, monkeypatch, capsys):
    monkeypatch.setattr(weights, "SHIPPED_DIR", shipped.parent)
    model = create_model("resnet20", weights="cifar10").eval()
    trained = resnet.load(run / "last.pt", "cpu").model
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x), atol=0.05, rtol=0.01)  # float16 storage
    with pytest.raises(UsageError, match="resnet56 has no shipped cifar10 weights; shipped: resnet20"):
        create_model("resnet56", weights="cifar10")
    assert main(["models", "--family", "cifar", "--json"]) == 0
    rows = {r["name"]: r["weights"] for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet20"] == {"cifar10": round(read_metadata(shipped)["test_error"], 5)} and rows["resnet56"] == {}


def test_only_a_finished_run_ships(tmp_path):
    with pytest.raises(UsageError, match="not a finished run"):
        ship(tmp_path, out=tmp_path / "x.safetensors")
    with pytest.raises(UsageError, match="unknown shipped weights tag"):
        ship(tmp_path, tag="imagenet")
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("path", sorted(SHIPPED_DIR.glob("*.safetensors")), ids=lambda p: p.stem)
def test_each_shipped_file_scores_its_recorded_error(path):
    """The files in the package: a damaged file or a wrong normalization changes the error."""
    meta = read_metadata(path)
    measured = evaluate(path, data="embedded", model=meta["model_name"], device="cpu", engine="torch", precision="fp32")
    assert measured["top1_error"] == meta["subset_error"] and measured["precision"] == "fp32"


def test_predict_and_eval_take_shipped_weights_by_name(shipped, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(weights, "SHIPPED_DIR", shipped.parent)
    monkeypatch.chdir(tmp_path)  # eval's report goes to runs/, never into the package
    assert resnet.load(shipped, "cpu").config.data.source == "embedded"  # the file knows its network and data
    by_name = resnet.load(model="resnet20", weights="cifar10", device="cpu")  # the same from Python
    assert by_name.classes == resnet.load(shipped, "cpu").classes and by_name.config.data.source == "embedded"
    bad_precision = {"model": "resnet20", "weights": "cifar10", "precision": "fp16"}
    for bad, message in (
        ({"weights": "cifar10"}, "name the network with model="),
        ({}, "one of them"),
        (bad_precision, "unknown precision 'fp16'; choose one of: auto, fp32, bf16"),
    ):
        with pytest.raises(UsageError, match=message):
            resnet.load(**bad)
    ship_jpg = str(SHIPPED_DIR.parent / "examples" / "ship.jpg")
    assert main(["predict", "--model", "resnet20", "--weights", "cifar10", ship_jpg, "--topk", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["image"] == ship_jpg and len(rows[0]["top"]) == 2
    # the recorded error is float32's: evaluated so, the same on a CPU with native bf16 (where auto is bf16)
    assert main(["eval", "--model", "resnet20", "--weights", "CIFAR10", "--precision", "fp32", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["top1_error"] == read_metadata(shipped)["subset_error"] and measured["count"] == 1000
    assert measured["precision"] == "fp32"
    assert main(["eval", "--model", "resnet20", "--weights", "cifar10", "--precision", "bf16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bf16"  # asked for, native or not
    assert (tmp_path / "runs" / "eval-resnet20-cifar10-test-none" / "metrics.json").is_file()
    assert weights.weights_path("resnet20", "cifar10") == shipped
    assert main(["predict", "--weights", "cifar10", ship_jpg]) == 2
    assert "name the network with --model" in capsys.readouterr().err


def test_finetune_starts_from_shipped_weights_by_name(shipped, image_folder, monkeypatch, tmp_path):
    """A linear probe from the shipped weights keeps their backbone, BN statistics included."""
    monkeypatch.setattr(weights, "SHIPPED_DIR", shipped.parent)
    out = tmp_path / "probe"
    args = ["finetune", "--from", "cifar10", "--model", "resnet20", "--data", str(image_folder), "--mode", "linear"]
    assert main([*args, "--iters", "1", "--set", "batch_size=8", "--out", str(out)]) == 0
    start = create_model("resnet20", weights="cifar10").state_dict()
    after = resnet.checkpoint.load(out / "last.pt")["model"]
    assert after["fc.weight"].shape == (3, 64)
    assert all(torch.equal(start[k], after[k]) for k in start if not k.startswith("fc."))
