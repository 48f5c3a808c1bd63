"""Feature consistency 1 - cos: hand-computed value, scale invariance, zero at equality."""

from __future__ import annotations

import pytest
import torch

from edgekd.losses.feature_consistency import FeatureConsistency
from edgekd.losses.outputs import StudentOut, TeacherOut
from tests.losses.batch import identical_batch


def test_value_and_scale_invariance():
    f_s, f_t = torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # row 0: cos = 3/5 -> 0.4; row 1: cos = 1 -> 0; mean 0.2
    assert FeatureConsistency()(StudentOut(f_s), TeacherOut(f_t), torch.zeros(2)).item() == pytest.approx(0.2)
    assert FeatureConsistency()(StudentOut(7 * f_s), TeacherOut(f_t), torch.zeros(2)).item() == pytest.approx(
        0.2
    )


def test_zero_when_equal():
    b = identical_batch()
    assert FeatureConsistency()(b.student, b.teacher, b.labels).item() == pytest.approx(0.0, abs=1e-6)
