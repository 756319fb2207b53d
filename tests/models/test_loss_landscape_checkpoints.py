"""The checkpoints of Li et al.'s loss-landscape code (tomgoldstein/loss-landscape, cifar10/): their
ResNet-56 (a 1×1 projection with BN, `shortcut.0/1`, where the shape changes: option B) and ResNet-56
without shortcuts, the classifier named `linear`, saved as {'state_dict', 'acc', 'epoch'} in `.t7` files.
The networks below are written here from that layout, independently of the package's, at 20 layers
(their ResNet_cifar class builds every depth with the same names; 20 keeps the test fast)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet import UsageError, create_model


class Block(nn.Module):
    def __init__(self, cin, cout, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.has_shortcut = shortcut
        if shortcut:
            projects = stride != 1 or cin != cout
            self.shortcut = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if projects
                else nn.Sequential()
            )

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x) if self.has_shortcut else out)


class ReferenceResNet(nn.Module):
    def __init__(self, depth, shortcut):
        super().__init__()
        n, cin = (depth - 2) // 6, 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        for stage, width in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                blocks.append(Block(cin, width, 2 if (i == 0 and stage) else 1, shortcut))
                cin = width
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.linear(F.avg_pool2d(x, 8).flatten(1))


def _saved(tmp_path, shortcut):
    """A trained-looking reference network (random BN statistics), saved as its main.py saves."""
    torch.manual_seed(4)
    net = ReferenceResNet(20, shortcut)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path / "model_300.t7"
    torch.save({"acc": 94.11, "epoch": 300, "state_dict": net.state_dict()}, path)
    return net.eval(), path


@pytest.mark.parametrize("shortcut, name, options", [(True, "resnet20", {"shortcut": "B"}), (False, "plain20", {})])
def test_their_resnets_with_and_without_shortcuts_load_and_give_their_outputs(tmp_path, shortcut, name, options):
    net, path = _saved(tmp_path, shortcut)
    assert any(".shortcut.0." in k for k in net.state_dict()) is shortcut
    model = create_model(name, weights=path, **options).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=1e-5, atol=1e-5)


def test_their_resnet_is_refused_by_a_network_of_another_shortcut(tmp_path):
    _, path = _saved(tmp_path, True)
    with pytest.raises(UsageError, match="does not fit"):
        create_model("resnet20", weights=path)  # option A: no projections to take theirs
