import pytest
import torch
import torch.nn.functional as F

from resnet.config import resolve
from resnet.train.loss import binary_cross_entropy, soft_targets, training_loss


def _mixed(labels, partners, lam, classes):
    """timm's mixup_target without smoothing: λ one_hot(y) + (1 - λ) one_hot(y of the partner)."""
    return lam * F.one_hot(labels, classes).float() + (1 - lam) * F.one_hot(partners, classes).float()


def test_bce_is_the_sum_over_classes_of_each_binary_cross_entropy_averaged_over_the_batch():
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    t = F.one_hot(labels, 5).float() * 0.9 + 0.1 / 5  # smoothing 0.1
    p = logits.sigmoid()
    direct = -(t * p.log() + (1 - t) * (1 - p).log()).sum(1).mean()
    assert torch.allclose(binary_cross_entropy(logits, labels, smoothing=0.1), direct, atol=1e-6)
    # mixed targets with a threshold: both classes of a 0.7/0.3 mix become 1, the smoothed rest 0
    mixed = _mixed(labels, labels.roll(1), 0.7, 5)
    hard = (F.one_hot(labels, 5) + F.one_hot(labels.roll(1), 5)).clamp(max=1).float()
    direct = -(hard * p.log() + (1 - hard) * (1 - p).log()).sum(1).mean()
    assert torch.allclose(binary_cross_entropy(logits, mixed, smoothing=0.1, threshold=0.2), direct, atol=1e-6)


def test_label_smoothing_of_mixed_targets_is_timms():
    logits, labels = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    partners, lam, eps = torch.tensor([2, 1, 4, 3]), 0.6, 0.1
    mixed = _mixed(labels, partners, lam, 10)
    off, on = eps / 10, 1 - eps + eps / 10  # timm: smooth each one-hot, then mix
    timm = lam * F.one_hot(labels, 10) * (on - off) + (1 - lam) * F.one_hot(partners, 10) * (on - off) + off
    assert torch.allclose(soft_targets(mixed, 10, eps), timm) and torch.allclose(timm.sum(1), torch.ones(4))
    loss = training_loss(resolve("fast", ["label_smoothing=0.1"]))  # cross-entropy
    assert torch.allclose(loss(logits, mixed), -(timm * logits.log_softmax(1)).sum(1).mean())


@pytest.mark.parametrize("recipe", ["cifar-paper", "fast"])
def test_the_default_loss_is_the_cross_entropy_of_the_labels_as_before(recipe):
    config = resolve(recipe)
    logits, labels = torch.randn(8, 10), torch.arange(8)
    expected = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
    assert torch.equal(training_loss(config)(logits, labels), expected)  # bit for bit
    bce = training_loss(resolve(recipe, ["loss=bce"]))
    assert torch.allclose(bce(logits, labels), binary_cross_entropy(logits, labels, config.label_smoothing))
