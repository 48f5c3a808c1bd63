"""L2 embedding distillation: hand-computed values (normalised and raw), zero at equality."""

from __future__ import annotations

import pytest
import torch

from edgekd.losses.feature_l2 import FeatureL2
from edgekd.losses.outputs import StudentOut, TeacherOut
from tests.losses.batch import identical_batch

F_S = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
F_T = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def test_normalised_value():
    # row 0: [0.6, 0.8] - [1, 0] -> 0.16 + 0.64 = 0.8; row 1: same direction -> 0
    value = FeatureL2()(StudentOut(F_S), TeacherOut(F_T), torch.zeros(2))
    assert value.item() == pytest.approx(0.4, rel=1e-6)


def test_raw_value():
    # row 0: (3-1)² + 4² = 20; row 1: (2-1)² = 1
    value = FeatureL2(normalize=False)(StudentOut(F_S), TeacherOut(F_T), torch.zeros(2))
    assert value.item() == pytest.approx(10.5, rel=1e-6)


@pytest.mark.parametrize("normalize", [True, False])
def test_zero_when_equal(normalize):
    b = identical_batch()
    assert FeatureL2(normalize=normalize)(b.student, b.teacher, b.labels).item() == pytest.approx(
        0.0, abs=1e-6
    )
