"""Margin heads: hand-made angles give s·cos(θ + m) (ArcFace), s·(cos θ - m) (CosFace), the fallbacks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgekd.errors import ConfigError
from edgekd.losses.margin import ArcFaceLoss, CombinedMarginHead, CosFaceLoss
from edgekd.losses.outputs import StudentOut, TeacherOut


def _head(**kwargs) -> CombinedMarginHead:
    head = CombinedMarginHead(2, 2, s=64.0, **kwargs)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))  # unnormalised on purpose
    return head


def _at(theta: float, scale: float = 3.0) -> torch.Tensor:
    """An embedding at angle θ from class 0 (and π/2 - θ from class 1)."""
    return scale * torch.tensor([[math.cos(theta), math.sin(theta)]])


@pytest.mark.parametrize("theta", [0.3, 1.2, 2.5])
def test_arcface_target_logit(theta):
    logits = _head(m2=0.5)(_at(theta), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(theta + 0.5), abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(64 * math.cos(math.pi / 2 - theta), abs=1e-4)


def test_cosface_target_logit():
    logits = _head(m3=0.4)(_at(0.7), torch.tensor([1]))
    assert logits[0, 1].item() == pytest.approx(64 * (math.cos(math.pi / 2 - 0.7) - 0.4), abs=1e-4)
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(0.7), abs=1e-4)


def test_large_angle_fallback_and_easy_margin():
    theta = 2.9  # θ + 0.5 > π
    fallback = _head(m2=0.5)(_at(theta), torch.tensor([0]))[0, 0].item()
    assert fallback == pytest.approx(64 * (math.cos(theta) - 0.5 * math.sin(0.5)), abs=1e-4)
    easy = _head(m2=0.5, easy_margin=True)
    assert easy(_at(2.0), torch.tensor([0]))[0, 0].item() == pytest.approx(64 * math.cos(2.0), abs=1e-4)
    assert easy(_at(1.0), torch.tensor([0]))[0, 0].item() == pytest.approx(64 * math.cos(1.5), abs=1e-4)


def test_multiplicative_margin():
    logits = _head(m1=2.0)(_at(0.6), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(1.2), abs=1e-3)


def test_logits_without_labels_and_unknown_labels_have_no_margin():
    head = _head(m2=0.5)
    plain = 64 * torch.tensor([[math.cos(0.3), math.sin(0.3)]])
    torch.testing.assert_close(head.logits(_at(0.3)), plain)
    torch.testing.assert_close(head.logits(_at(0.3), torch.tensor([-1])), plain)


def test_loss_terms_are_cross_entropy_over_margin_logits():
    torch.manual_seed(0)
    emb, labels = torch.randn(6, 8, requires_grad=True), torch.tensor([0, 1, 2, 3, 4, -1])
    for term in (ArcFaceLoss(8, 5), CosFaceLoss(8, 5)):
        expected = F.cross_entropy(term.head(emb, labels)[:5], labels[:5])
        value = term(StudentOut(emb), TeacherOut(torch.zeros(6, 8)), labels)
        torch.testing.assert_close(value, expected)
        value.backward()
        assert term.head.weight.grad is not None and torch.isfinite(emb.grad).all()
    assert (ArcFaceLoss(8, 5).head.m2, CosFaceLoss(8, 5).head.m3, CosFaceLoss(8, 5).head.s) == (
        0.5,
        0.4,
        64.0,
    )


def test_bad_margin():
    with pytest.raises(ConfigError, match="s > 0"):
        CombinedMarginHead(4, 3, s=0.0)
