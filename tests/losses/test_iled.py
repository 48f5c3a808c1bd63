"""ILED: hard samples weigh more, gamma = 0 is the plain mean, top-k keeps exactly k, schedules anneal."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.losses.feature_consistency import FeatureConsistency
from edgekd.losses.iled import ILED
from tests.losses.batch import identical_batch, random_batch


def test_power_weights_grow_with_error_and_average_one():
    term = ILED(mode="power", gamma0=0.0, gamma1=2.0, anneal_steps=100)
    errors = torch.tensor([0.1, 0.2, 0.4, 0.8], requires_grad=True)
    w = term.weights(errors, step=100)
    assert not w.requires_grad
    assert torch.all(w[1:] > w[:-1]) and w.mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(w, errors.detach() ** 2 / (errors.detach() ** 2).mean())


def test_gamma_zero_is_plain_mean():
    b = random_batch(1)
    term = ILED(mode="power", gamma0=0.0, gamma1=0.0)
    plain = FeatureConsistency()(b.student, b.teacher, b.labels)
    torch.testing.assert_close(term(b.student, b.teacher, b.labels, step=123), plain)
    l2 = ILED(metric="l2", gamma0=0.0, gamma1=0.0)(b.student, b.teacher, b.labels)
    torch.testing.assert_close(l2, 2 * plain)  # on unit vectors ‖a - b‖² = 2(1 - cos)


def test_power_mode_emphasises_hard_samples():
    b = random_batch(2)
    term = ILED(mode="power", gamma0=1.0, gamma1=1.0)
    errors = term.errors(b.student.embedding, b.teacher.embedding)
    expected = (errors * errors / errors.mean()).mean()
    torch.testing.assert_close(term(b.student, b.teacher, b.labels), expected)
    assert expected > errors.mean()


@pytest.mark.parametrize("step, k", [(0, 8), (50, 6), (100, 4), (10_000, 4)])
def test_topk_keeps_exactly_k_hardest(step, k):
    b = random_batch(3)
    term = ILED(mode="topk", k_min=0.5, anneal_steps=100)
    errors = term.errors(b.student.embedding, b.teacher.embedding)
    w = term.weights(errors, step)
    kept = torch.nonzero(w).squeeze(1)
    assert len(kept) == k
    assert set(kept.tolist()) == set(errors.topk(k).indices.tolist())
    torch.testing.assert_close(term(b.student, b.teacher, b.labels, step), errors.topk(k).values.mean())


def test_schedules():
    term = ILED(gamma0=0.5, gamma1=2.5, k_min=0.25, anneal_steps=10)
    assert (term.gamma(0), term.gamma(5), term.gamma(99)) == (0.5, 1.5, 2.5)
    assert (term.keep_ratio(0), term.keep_ratio(10)) == (1.0, 0.25)


@pytest.mark.parametrize("mode", ["power", "topk"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_zero_when_equal(mode, metric):
    b = identical_batch()
    value = ILED(metric=metric, mode=mode, gamma0=2.0)(b.student, b.teacher, b.labels, step=5)
    assert value.item() == pytest.approx(0.0, abs=1e-6)


def test_bad_options():
    with pytest.raises(ConfigError, match="k_min"):
        ILED(k_min=0.0)
    with pytest.raises(ConfigError, match="mode"):
        ILED(mode="focal")
