"""Student -> teacher projection: mismatched sizes fail clearly without it, work with it."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.losses import LossSpec, build_objective
from edgekd.losses.feature_l2 import FeatureL2
from edgekd.losses.projection import EmbeddingProjection
from tests.losses.batch import C, D, random_batch


@pytest.mark.parametrize("name", ["l2", "fc", "iled", "rpsd"])
def test_mismatch_without_projection_names_both_sizes(name):
    with pytest.raises(
        ConfigError, match=r"student embedding size 16 != teacher embedding size 32.*projection"
    ):
        build_objective([LossSpec(name)], D, C, teacher_dim=32)


def test_mismatch_found_at_first_batch_when_teacher_dim_unknown():
    b = random_batch(teacher_dim=32)
    term = FeatureL2(student_dim=D)
    with pytest.raises(ValueError, match="16 != teacher embedding size 32"):
        term(b.student, b.teacher, b.labels)


@pytest.mark.parametrize("name", ["l2", "fc", "iled", "rpsd"])
def test_projection_maps_student_to_teacher_size(name):
    objective = build_objective(
        [LossSpec(name, params={"projection": True, "projection_bn": True})], D, C, 32
    )
    b = random_batch(teacher_dim=32)
    total, _ = objective(b.student, b.teacher, b.labels)
    total.backward()
    projection = objective.terms[name].projection
    assert isinstance(projection, EmbeddingProjection) and projection.linear.weight.shape == (32, D)
    assert projection.linear.bias is None and projection.linear.weight.grad is not None
    assert b.student.embedding.grad is not None


def test_projection_options():
    p = EmbeddingProjection(4, 6, bias=True, batchnorm=False)
    assert (
        p(torch.randn(3, 4)).shape == (3, 6)
        and p.linear.bias is not None
        and isinstance(p.bn, torch.nn.Identity)
    )
    with pytest.raises(ConfigError, match="needs student_dim and teacher_dim"):
        FeatureL2(projection=True)
