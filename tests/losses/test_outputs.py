"""StudentOut/TeacherOut check their shapes."""

from __future__ import annotations

import pytest
import torch

from edgekd.losses.outputs import StudentOut, TeacherOut


def test_defaults():
    out = TeacherOut(torch.zeros(2, 4))
    assert out.logits is None and out.features == {}


@pytest.mark.parametrize("cls", [StudentOut, TeacherOut])
def test_bad_shapes(cls):
    with pytest.raises(ValueError, match=r"embedding must be \(N, D\)"):
        cls(torch.zeros(4))
    with pytest.raises(ValueError, match="logits must be"):
        cls(torch.zeros(2, 4), torch.zeros(3, 5))
