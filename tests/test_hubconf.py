import importlib.util
import re
from importlib.metadata import requires
from pathlib import Path

import pytest
import torch

import resnet
from resnet import UsageError, list_models

REPO = Path(__file__).resolve().parents[1]


def test_load_a_model_from_the_repository_folder():
    model = torch.hub.load(str(REPO), "resnet20", source="local")
    assert model.fc.out_features == 10 and model.num_features == 64
    assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_every_registered_model_is_an_entry_point():
    # torch.hub imports hubconf.py as a module of its own and lists its public callables
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entries = {name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")}
    assert entries == set(list_models())
    # torch.hub checks these import names before loading: each must be a requirement of the package
    import_names = {"Pillow": "PIL", "PyYAML": "yaml"}
    requirements = [r for r in requires("resnet") if "extra ==" not in r]
    required = {import_names.get(name, name) for name in (re.split(r"[<>=!~ ]", r)[0] for r in requirements)}
    assert hubconf.dependencies[0] == "torch" and set(hubconf.dependencies) <= required
    assert all(importlib.util.find_spec(name) for name in hubconf.dependencies)
    assert "CIFAR ResNet-56" in hubconf.resnet56.__doc__


def test_weights_and_options_pass_through(trained_run):
    model = torch.hub.load(str(REPO), "resnet20", source="local", weights=str(trained_run / "best.pt"))
    reference = resnet.load(trained_run / "best.pt").model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    model = torch.hub.load(str(REPO), "resnet32", source="local", num_classes=100, shortcut="B")
    assert model.fc.out_features == 100 and model.layer2[0].downsample is not None


def test_pretrained_loads_the_shipped_weights_or_says_there_are_none():
    model = torch.hub.load(str(REPO), "resnet20", source="local", pretrained=True)  # the CIFAR-10 network shipped
    shipped = resnet.create_model("resnet20", weights="cifar10")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))
    assert not torch.equal(model.fc.weight, resnet.create_model("resnet20").fc.weight)
    with pytest.raises(UsageError, match="resnet32 has no trained weights to load"):
        torch.hub.load(str(REPO), "resnet32", source="local", pretrained=True)
    with pytest.raises(UsageError, match="either pretrained=True or weights"):
        torch.hub.load(str(REPO), "resnet50", source="local", pretrained=True, weights="x.pth")
