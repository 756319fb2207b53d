"""The checkpoints of the most used PyTorch CIFAR reproduction (Idelbayev's pytorch_resnet_cifar10) load
as they are: option A shortcuts padding `planes // 4` zero channels on each side, the classifier
named `linear`, every key prefixed `module.` (DataParallel), saved as {'state_dict', 'best_prec1'}.
The network below is written here from that layout, independently of the package's."""

import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import make_cifar_archive
from torch import nn

from resnet import checkpoint, create_model, finetune
from resnet.cli import main

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # what that reproduction trains with


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout // 4 if (stride != 1 or cin != cout) else 0

    def forward(self, x):
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + shortcut)


class PublishedResNet(nn.Module):
    def __init__(self, n, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for stage, width in enumerate((16, 32, 64)):
            blocks = [Block(cin if i == 0 else width, width, 2 if (i == 0 and stage) else 1) for i in range(n)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            cin = width
        self.linear = nn.Linear(64, num_classes)

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.adaptive_avg_pool2d(self.layer3(self.layer2(self.layer1(x))), 1).flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A CIFAR-10 archive in the original format (noise images)."""
    return make_cifar_archive(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz")


@pytest.fixture(scope="module")
def published(tmp_path_factory, archive):
    """A trained-looking resnet20 of that reproduction (random weights and BN statistics), saved as it
    saves; its classifier centred on the archive's test images, so that they get different classes."""
    torch.manual_seed(3)
    net = PublishedResNet(3)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    nn.init.normal_(net.linear.weight, std=3.0)
    net.eval()
    with torch.no_grad():
        net.linear.bias.copy_(-net.linear.weight @ net.features(_test_images(archive)[0]).mean(0))
    path = tmp_path_factory.mktemp("published") / "resnet20-12fca82f.th"
    torch.save({"state_dict": nn.DataParallel(net).state_dict(), "best_prec1": 91.73}, path)
    return net.eval(), path


def test_its_checkpoint_gives_its_outputs(published):
    net, path = published
    assert all(k.startswith("module.") for k in torch.load(path)["state_dict"])
    model = create_model("resnet20", weights=path).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=1e-5, atol=1e-5)


def _test_images(archive):
    with tarfile.open(archive) as tar:
        batch = pickle.load(tar.extractfile("cifar-10-batches-py/test_batch"), encoding="latin1")
    images = torch.from_numpy(np.asarray(batch["data"]).reshape(-1, 3, 32, 32)).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (images - mean) / std, np.asarray(batch["labels"])


def test_resnet_eval_scores_it_as_its_own_code_does(published, archive, tmp_path, capsys):
    net, path = published
    images, labels = _test_images(archive)
    with torch.no_grad():
        predicted = net(images).argmax(1).numpy()
    assert len(set(predicted)) >= 3  # outputs that tell images apart: the comparison below can fail
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (labels, predicted), 1)

    out = tmp_path / "report"
    args = ["eval", str(path), "--model", "resnet20", "--data", str(archive), "--device", "cpu"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.array_equal(np.asarray(metrics["confusion"]), expected)
    assert metrics["top1_error"] == pytest.approx(float(np.mean(predicted != labels)))
    capsys.readouterr()

    assert main(args[:2] + ["--data", str(archive)]) == 2  # which network it is cannot be guessed
    assert "--model" in capsys.readouterr().err
    assert main(args[:2] + ["--model", "resnet32", "--data", str(archive)]) == 2  # another depth: refused
    assert "does not fit" in capsys.readouterr().err


def test_finetune_from_it(published, image_folder, tmp_path):
    net, path = published
    overrides = {"optimizer.lr": 0.0, "data.augment": "none"}
    result = finetune(str(path), str(image_folder), model="resnet20", mode="full", out=tmp_path / "run",
                      overrides=overrides, iters=1, progress=False)  # fmt: skip
    assert result.steps == 1
    tuned = checkpoint.load(tmp_path / "run" / "last.pt")["model"]
    assert torch.equal(tuned["layer3.2.conv2.weight"], net.layer3[2].conv2.weight)  # lr 0: the file's backbone
    assert tuned["fc.weight"].shape == (3, 64)  # a new head for the three classes


def test_with_model_named_this_projects_checkpoint_keeps_its_own_preprocessing(trained_run, image_folder):
    from resnet import UsageError, evaluate, load
    from resnet.inference import from_weights

    path, data = trained_run / "best.pt", str(image_folder)
    plain = evaluate(path, data, device="cpu", engine="torch")
    named = evaluate(path, data, device="cpu", engine="torch", model="resnet20")
    assert named["confusion"] == plain["confusion"]
    own, again = load(path, "cpu"), from_weights(path, "resnet20", plain["classes"])
    assert torch.equal(again.normalize.mean, own.normalize.mean)  # its own normalization, not ImageNet's
    assert (again.image_size, again.eval_resize) == (own.image_size, own.eval_resize)
    with pytest.raises(UsageError, match="holds resnet20, not resnet32"):
        evaluate(path, data, model="resnet32")
