"""Hinton KD: hand-computed values, zero at equality, T² scaling."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.losses.hinton_kd import HintonKD
from edgekd.losses.outputs import StudentOut, TeacherOut
from tests.losses.batch import identical_batch


def _kd(z_s, z_t, T):
    emb = torch.zeros(len(z_s), 2)
    return HintonKD(T=T)(
        StudentOut(emb, torch.tensor(z_s)), TeacherOut(emb, torch.tensor(z_t)), torch.zeros(2)
    )


def test_two_class_value():
    # p_t = [3/4, 1/4], p_s = [1/2, 1/2]: KL = 3/4·ln(3/2) + 1/4·ln(1/2)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert _kd([[0.0, 0.0]], [[math.log(3), 0.0]], T=1.0).item() == pytest.approx(kl, rel=1e-6)
    # the same distributions at T = 2 (logits doubled), times T² = 4; the equal second row halves the mean
    value = _kd([[0.0, 0.0], [1.0, 1.0]], [[2 * math.log(3), 0.0], [2.0, 2.0]], T=2.0)
    assert value.item() == pytest.approx(4 * kl / 2, rel=1e-6)


def test_zero_when_equal():
    b = identical_batch()
    assert HintonKD()(b.student, b.teacher, b.labels).item() == pytest.approx(0.0, abs=1e-6)


def test_bad_temperature():
    with pytest.raises(ConfigError, match="T must be > 0"):
        HintonKD(T=0.0)
