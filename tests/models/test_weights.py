import argparse
import hashlib
import http.server
import re
import threading
from functools import partial

import numpy as np
import pytest
import torch
from reference_weights import FIXTURES, reference_input, reference_state_dict
from safetensors.torch import save_file

import resnet
from resnet import UsageError, create_model
from resnet.models import weights as W


def r18_state() -> dict[str, torch.Tensor]:
    """resnet18 weights with torchvision's keys, whose outputs torchvision computed (torchvision_outputs.npz)."""
    return {k: torch.from_numpy(v) for k, v in reference_state_dict("resnet18").items()}


def small_state(num_classes: int = 3, **options) -> dict[str, torch.Tensor]:
    """resnet20 weights (torchvision's key names: conv1, bn1, layerN, fc) unlike any initialization."""
    state = create_model("resnet20", num_classes=num_classes, **options).state_dict()
    return {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v + 7 for k, v in state.items()}


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the formats --------------------------------------------------------------------------------


def test_torchvision_state_dict_gives_torchvisions_outputs(tmp_path):
    torch.save(r18_state(), tmp_path / "resnet18-tv.pth")
    model = create_model("resnet18", weights=tmp_path / "resnet18-tv.pth").eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(reference_input())).double().numpy()
    expected = np.load(FIXTURES / "torchvision_outputs.npz")["resnet18"]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def _timm_training_checkpoint(state, path):
    # timm's train.py: {'epoch', 'arch', 'state_dict', 'state_dict_ema', 'args': Namespace, ...}, the EMA
    # copy under 'module.'; timm's loader prefers the EMA weights, so the plain ones here are wrong.
    wrong = {k: v + 1 for k, v in state.items()}
    ema = {f"module.{k}": v for k, v in state.items()}
    checkpoint = {
        "epoch": 9,
        "arch": "resnet20",
        "state_dict": wrong,
        "state_dict_ema": ema,
        "args": argparse.Namespace(lr=0.1),
    }
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    "write",
    [
        lambda state, path: torch.save(state, path),
        lambda state, path: save_file(state, path),
        lambda state, path: torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path),
        lambda state, path: torch.save({"state_dict": {f"_orig_mod.{k}": v for k, v in state.items()}}, path),
        lambda state, path: torch.save({f"module._orig_mod.{k}": v for k, v in state.items()}, path),
        _timm_training_checkpoint,
        lambda state, path: save_file({re.sub("^fc[.]", "head.fc.", k): v for k, v in state.items()}, path),
    ],
    ids=["pth", "safetensors", "module", "compiled", "both", "timm-ema", "timm-head-fc"],
)
def test_file_formats(tmp_path, write):
    state = small_state()
    write(state, tmp_path / "weights.bin")
    assert same_tensors(create_model("resnet20", weights=tmp_path / "weights.bin").state_dict(), state)


def test_missing_batch_counters_are_tolerated(tmp_path):
    state = small_state()
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, tmp_path / "old.pth")
    loaded = create_model("resnet20", weights=tmp_path / "old.pth").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.endswith("num_batches_tracked"))


def test_headless_timm_weights_load_the_backbone(tmp_path):
    # timm models made with num_classes=0 have no fc: the backbone loads, the classifier is the model's own.
    state = small_state()
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, tmp_path / "headless.pth")
    loaded = create_model("resnet20", weights=tmp_path / "headless.pth").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert loaded["fc.weight"].shape == (10, 64) and not torch.equal(loaded["fc.bias"], torch.zeros(10) + 7)
    with pytest.raises(UsageError, match=r"holds no classifier \(fc.weight\); head='new'"):
        W.load_weights(create_model("resnet20"), tmp_path / "headless.pth")


def test_densenet_legacy_names_of_torchvisions_files(tmp_path):
    # torchvision's published DenseNet files say denselayerN.norm.1 for denselayerN.norm1 and predate
    # BN's num_batches_tracked.
    state = create_model("densenet_bc100_k12").state_dict()
    state = {k: torch.rand_like(v) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    old = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "densenet-old.pth")
    loaded = create_model("densenet_bc100_k12", weights=tmp_path / "densenet-old.pth").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_own_checkpoint_brings_its_classes(trained_run):
    model = create_model("resnet20", weights=trained_run / "best.pt")
    assert model.fc.out_features == 3
    assert same_tensors(model.state_dict(), resnet.load(trained_run / "best.pt").model.state_dict())


def test_safetensors_metadata_brings_the_model_options(tmp_path):
    # this project's exports name the model and its options: shortcut B has layers option A has not
    state = small_state(shortcut="B")
    metadata = {"format": W.EXPORT_FORMAT, "model_name": '"resnet20"', "model_options": '{"shortcut": "B"}'}
    save_file(state, tmp_path / "b.safetensors", metadata=metadata)
    assert same_tensors(create_model("resnet20", weights=tmp_path / "b.safetensors").state_dict(), state)


# -- the classifier -----------------------------------------------------------------------------


def test_another_number_of_classes_loads_the_backbone_with_a_new_head(tmp_path):
    state = small_state(num_classes=3)
    torch.save(state, tmp_path / "w.pth")
    model = create_model("resnet20", num_classes=10, weights=tmp_path / "w.pth")
    assert model.fc.out_features == 10
    assert torch.equal(model.layer3[2].conv2.weight, state["layer3.2.conv2.weight"])


def test_load_weights_head_modes(tmp_path):
    state = small_state(num_classes=3)
    torch.save(state, tmp_path / "w.pth")
    model = create_model("resnet20", num_classes=10)
    fresh_fc = model.fc.weight.clone()
    with pytest.raises(UsageError, match="classifier has 3 outputs, the model's 10; head='new'"):
        W.load_weights(model, tmp_path / "w.pth")
    assert W.load_weights(model, tmp_path / "w.pth", head="new") == ["fc.bias", "fc.weight"]
    assert torch.equal(model.fc.weight, fresh_fc) and torch.equal(model.conv1.weight, state["conv1.weight"])
    same_size = create_model("resnet20", num_classes=3)
    assert W.load_weights(same_size, tmp_path / "w.pth", head="new") == ["fc.bias", "fc.weight"]
    assert not torch.equal(same_size.fc.weight, state["fc.weight"])
    assert W.load_weights(same_size, tmp_path / "w.pth", head="auto") == []
    assert torch.equal(same_size.fc.weight, state["fc.weight"])
    with pytest.raises(UsageError, match="unknown head 'keep'"):
        W.load_weights(same_size, tmp_path / "w.pth", head="keep")


# -- what cannot load ---------------------------------------------------------------------------


def _deep_stem(state):
    # timm resnet*c/d: conv1 is a Sequential of three 3×3 convolutions with BN and ReLU between them
    state = {k: v for k, v in state.items() if k != "conv1.weight"}
    stem = {"conv1.0.weight": (8, 3, 3, 3), "conv1.1.weight": (8,), "conv1.3.weight": (8, 8, 3, 3)}
    return {**state, **{k: torch.zeros(s) for k, s in stem.items()}, "conv1.6.weight": torch.zeros(16, 8, 3, 3)}


def _avg_down(state):
    # timm resnet*d: downsample = (AvgPool2d, conv, BN)
    return {
        k.replace("downsample.1.", "downsample.2.").replace("downsample.0.", "downsample.1."): v
        for k, v in state.items()
    }


def _se(state):
    return {**state, "layer1.0.se.fc1.weight": torch.zeros(4, 16, 1, 1)}


@pytest.mark.parametrize(
    "variant, message",
    [(_deep_stem, "deep 3-layer 3×3 stem"), (_avg_down, "average-pool shortcuts"), (_se, "squeeze-and-excitation")],
)
def test_timm_variants_without_counterpart_are_refused(tmp_path, variant, message):
    torch.save({"state_dict": variant(small_state(shortcut="B"))}, tmp_path / "timm.pth")
    with pytest.raises(UsageError, match=message):
        create_model("resnet20", shortcut="B", weights=tmp_path / "timm.pth")


def test_a_misfit_is_refused_before_anything_is_copied(tmp_path):
    state = small_state()
    state["layer3.2.bn2.weight"] = torch.ones(32)  # the last layer: a one-by-one copy would be nearly done
    torch.save(state, tmp_path / "bad.pth")
    model = create_model("resnet20", num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UsageError, match=r"layer3.2.bn2.weight is \(32,\) in the file, \(64,\) in the model"):
        W.load_weights(model, tmp_path / "bad.pth")
    assert same_tensors(model.state_dict(), before)


def test_weights_of_another_network(tmp_path):
    torch.save(small_state(), tmp_path / "r20.pth")
    # ResNet-32 has 6 blocks more, each 2 conv weights and 2 BNs of 4 tensors (their counters aside)
    with pytest.raises(UsageError, match="does not fit the model: 60 tensors missing"):
        create_model("resnet32", weights=tmp_path / "r20.pth")


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UsageError, match=r"evil.pth: refused: loading it would call exec \(code in a pickle\)"):
        create_model("resnet20", weights=tmp_path / "evil.pth")
    assert not marker.exists()
    torch.load(tmp_path / "evil.pth", weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()


@pytest.mark.parametrize("save", [torch.save, save_file], ids=["pth", "safetensors"])
def test_truncated_files_are_reported(tmp_path, save):
    path = tmp_path / "w.bin"
    save(small_state(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UsageError, match="damaged or truncated"):
        W.read_weights(path)


def test_files_without_a_state_dict(tmp_path):
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "opt.pth")
    with pytest.raises(UsageError, match="holds no state_dict"):
        W.read_weights(tmp_path / "opt.pth")
    with pytest.raises(UsageError, match="no such weights file"):
        create_model("resnet20", weights=tmp_path / "nope.pth")


# -- torchvision's published weights ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, tag, file",
    [
        ("resnet50", "imagenet", "resnet50-11ad3fa6.pth"),
        ("resnet50", "DEFAULT", "resnet50-11ad3fa6.pth"),
        ("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth"),
        ("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
        ("resnet18", "imagenet", "resnet18-f37072fd.pth"),
    ],
)
def test_published_names(name, tag, file):
    assert W.published(name, tag).file == file


def test_published_name_errors():
    with pytest.raises(UsageError, match="resnet20 has no published weights"):
        create_model("resnet20", weights="imagenet")
    with pytest.raises(
        UsageError, match=r"no published weights of resnet50 by that name \(imagenet, DEFAULT, IMAGENET1K_V1"
    ):
        create_model("resnet50", weights="IMAGENET1K_V9")
    with pytest.raises(UsageError, match="variant v1.5"):
        create_model("resnet50", weights="imagenet", variant="v1")
    with pytest.raises(UsageError, match="unknown model 'resnet5'"):
        create_model("resnet5", weights="imagenet")


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server of tmp_path/www, and a private cache: the download code runs against them."""
    monkeypatch.setenv("RESNET_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _serve(root, state, stem="resnet20", name=None):
    """`state` saved in the served folder under `name`, by default `stem-<first 8 hex digits of its SHA-256>.pth`."""
    path = root / "tmp.pth"
    torch.save(state, path)
    name = name or f"{stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}.pth"
    return path.rename(root / name)


def test_download_keeps_a_verified_file_and_reuses_it(server, tmp_path):
    root, url = server
    served = _serve(root, small_state())
    path = W.download(f"{url}/{served.name}")
    assert path == tmp_path / "cache" / "weights" / served.name and path.read_bytes() == served.read_bytes()
    served.unlink()  # the verified copy is used, nothing is fetched
    assert W.download(f"{url}/{served.name}") == path


def test_download_with_a_wrong_checksum_keeps_nothing(server, tmp_path):
    root, url = server
    _serve(root, small_state(), name="resnet20-0123abcd.pth")
    with pytest.raises(UsageError, match="checksum mismatch .* expected 0123abcd"):
        W.download(f"{url}/resnet20-0123abcd.pth")
    assert list((tmp_path / "cache" / "weights").iterdir()) == []


def test_published_weights_through_a_mirror(server, monkeypatch):
    root, url = server
    state = small_state(num_classes=10)
    served = _serve(root, state)
    monkeypatch.setenv(W.MIRROR_ENV, url)
    monkeypatch.setitem(W.PUBLISHED, "resnet20", (W.Published("IMAGENET1K_V1", served.name, 50.0, 36),))
    assert same_tensors(create_model("resnet20", weights="imagenet").state_dict(), state)


def test_published_weights_are_checked_against_torchvisions_digest(server, monkeypatch):
    root, url = server
    _serve(root, small_state(), name="resnet18-f37072fd.pth")  # torchvision's name, other contents
    monkeypatch.setenv(W.MIRROR_ENV, url)
    with pytest.raises(UsageError, match="checksum mismatch .* expected f37072fd"):
        create_model("resnet18", weights="IMAGENET1K_V1")


def test_unreachable_mirror(server, monkeypatch):
    monkeypatch.setenv(W.MIRROR_ENV, "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(UsageError, match=r"resnet18-f37072fd.pth: download failed .* \$RESNET_WEIGHTS_URL"):
        create_model("resnet18", weights="imagenet")
