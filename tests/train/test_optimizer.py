import sys

import pytest
import torch
from torch import nn

from resnet import UsageError
from resnet.config import resolve
from resnet.train.build import build_optimizer

BETAS, EPS, LR, WD = (0.9, 0.999), 1e-6, 0.05, 0.02


def _lamb(model: nn.Module, **overrides):
    settings = {"optimizer.name": "lamb", "optimizer.weight_decay": WD, **overrides}
    groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    optimizer = build_optimizer(resolve("cifar-paper", settings), groups, torch.device("cpu"))
    for group in optimizer.param_groups:
        group["lr"] = LR  # as the loop sets it at each step
    return optimizer


def test_lambs_first_step_is_the_trust_ratio_computed_by_hand():
    pytest.importorskip("pytorch_optimizer", reason="LAMB's package, of the lamb and test extras")
    model = nn.Sequential(nn.Linear(30, 20), nn.BatchNorm1d(20))
    with torch.no_grad():
        model[0].weight.mul_(40)  # ||w|| about 15: a trust ratio that clamped ||w|| at 10 would differ
    optimizer = _lamb(model, **{"optimizer.decay_norm_and_bias": False})
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model(torch.randn(16, 30)).pow(2).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    optimizer.step()

    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
    assert norm > 1  # the clipping matters
    for name, p in model.named_parameters():
        g = grads[name] / (norm + EPS)  # the global gradient norm clipped to 1
        m, v = (1 - BETAS[0]) * g, (1 - BETAS[1]) * g * g  # the first moments
        adam = m / (v.sqrt() + EPS)
        if p.ndim > 1:  # weight decay inside the trust ratio ||w|| / ||update||
            update = adam + WD * before[name]
            expected = before[name] - LR * before[name].norm() / (update.norm() + EPS) * update
        else:  # BN and biases: no weight decay, no layer adaptation (an Adam step, as timm's LAMB)
            expected = before[name] - LR * adam
        assert torch.allclose(p.detach(), expected, rtol=1e-5, atol=1e-7), name


def test_lamb_decays_and_adapts_every_parameter_when_asked():
    pytest.importorskip("pytorch_optimizer", reason="LAMB's package, of the lamb and test extras")
    optimizer = _lamb(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))
    [group] = optimizer.param_groups
    assert group["weight_decay"] == WD and not group["adam"]


def test_lamb_without_its_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_optimizer", None)  # an import of it fails
    with pytest.raises(UsageError, match=r"optimizer.name=lamb needs pytorch_optimizer: pip install 'resnet\[lamb\]'"):
        _lamb(nn.Linear(3, 2))
