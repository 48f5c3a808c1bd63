"""Grouped KD: the KL chain rule behind it, the tau -> 1 limit, grouping rules, the ramp."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.losses.gkd import GroupedKD, grouped_kl, primary_mask
from edgekd.losses.hinton_kd import HintonKD
from edgekd.losses.outputs import StudentOut, TeacherOut
from tests.losses.batch import identical_batch, random_batch


def _logits(seed: int, n: int = 8, c: int = 10):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, c, generator=g, dtype=torch.float64), 3 * torch.randn(
        n, c, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize(
    "k_mode, tau, k, granularity",
    [
        ("sample", 0.7, 1, 1),
        ("sample", 0.93, 1, 1),
        ("fixed", 0.5, 3, 1),
        ("batch", 0.8, 1, 3),
        ("fixed", 0.5, 10, 1),
    ],
)
def test_teacher_mass_weights_recover_full_kd(k_mode, tau, k, granularity):
    """KL(p_t‖p_s) = Binary + m_P^t·Primary + m_S^t·Secondary, per sample (the KL chain rule)."""
    z_s, z_t = _logits(0)
    labels = torch.arange(8) % 10
    T = 4.0
    probs = torch.softmax(z_s / T, dim=1)
    mask = primary_mask(probs, labels, tau, k_mode, k, granularity)
    g = grouped_kl(z_s, z_t, mask, T)
    recombined = g.binary + g.teacher_mass_primary * g.primary + g.teacher_mass_secondary * g.secondary
    p_t, log_ps = torch.softmax(z_t / T, dim=1), torch.log_softmax(z_s / T, dim=1)
    full = (p_t * (p_t.log() - log_ps)).sum(dim=1)
    torch.testing.assert_close(recombined, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        g.teacher_mass_primary + g.teacher_mass_secondary, torch.ones(8, dtype=torch.float64)
    )


@pytest.mark.parametrize("k_granularity", [1, 100])
def test_tau_one_is_primary_only_full_kd(k_granularity):
    b = random_batch(4)
    gkd = GroupedKD(T=4.0, tau=1.0, alpha=1.0, beta=8.0, lam=3.0, k_granularity=k_granularity)
    expected = 8.0 * HintonKD(T=4.0)(b.student, b.teacher, b.labels)
    torch.testing.assert_close(gkd(b.student, b.teacher, b.labels), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k_mode", ["batch", "sample", "fixed"])
def test_zero_when_equal(k_mode):
    b = identical_batch()
    gkd = GroupedKD(tau=0.5, k_mode=k_mode, k=3, k_granularity=2, lam=1.0)
    assert gkd(b.student, b.teacher, b.labels, step=0).item() == pytest.approx(0.0, abs=1e-5)


def test_sample_mode_forces_target_first():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.5, 0.3, 0.15, 0.05]])
    mask = primary_mask(probs, torch.tensor([0, 3]), tau=0.75, k_mode="sample")
    # row 0: 0.5 + 0.3 reaches 0.75; row 1: the target (0.05) first, then 0.5 and 0.3 reach 0.85
    assert mask.tolist() == [[True, True, False, False], [True, True, False, True]]


def test_fixed_and_batch_modes():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0, 0.0], [0.9, 0.04, 0.03, 0.02, 0.01, 0.0]])
    labels = torch.tensor([0, 5])
    assert primary_mask(probs, labels, 0.9, "fixed", k=1).sum(1).tolist() == [1, 1]
    assert primary_mask(probs, labels, 0.9, "fixed", k=1)[1, 5]  # the target, though its probability is 0
    # ranked cumulative means: row 0 [.5 .8 .95 ...], row 1 [0 .9 .94 ...] -> mean [.25 .85 .945]: K* = 3
    assert primary_mask(probs, labels, 0.9, "batch", k_granularity=1).sum(1).tolist() == [3, 3]
    assert primary_mask(probs, labels, 0.9, "batch", k_granularity=2).sum(1).tolist() == [4, 4]
    assert primary_mask(probs, labels, 0.9, "batch", k_granularity=100).sum(1).tolist() == [6, 6]


def test_rank_by_teacher_groups_by_teacher_probabilities():
    b = random_batch(5)
    gkd = GroupedKD(rank_by="teacher", k_mode="fixed", k=3, alpha=0.0, beta=1.0)
    mask = primary_mask(torch.softmax(b.teacher.logits / 4, 1), b.labels, 0.0, "fixed", k=3)
    expected = 16 * grouped_kl(b.student.logits, b.teacher.logits, mask, 4.0).primary.mean()
    torch.testing.assert_close(gkd(b.student, b.teacher, b.labels), expected)


def test_ramp():
    b = random_batch(6)
    gkd = GroupedKD(ramp_steps=100)
    full = gkd(b.student, b.teacher, b.labels, step=100)
    assert gkd(b.student, b.teacher, b.labels, step=0).item() == 0.0
    torch.testing.assert_close(gkd(b.student, b.teacher, b.labels, step=25), 0.25 * full)
    torch.testing.assert_close(gkd(b.student, b.teacher, b.labels, step=10_000), full)


def test_empty_secondary_group_has_finite_gradient():
    z = torch.randn(4, 5, requires_grad=True)
    loss = GroupedKD(tau=1.0, lam=1.0)(
        StudentOut(torch.zeros(4, 2), z), TeacherOut(torch.zeros(4, 2), 2 * z.detach()), z.new_zeros(4).long()
    )
    loss.backward()
    assert loss > 0 and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_bad_options():
    with pytest.raises(ConfigError, match="k_mode"):
        GroupedKD(k_mode="global")
    with pytest.raises(ConfigError, match="rank_by"):
        GroupedKD(rank_by="both")
