"""The minimal distillation loop: schedule values, determinism, learning, flip pairing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.data.preprocess import PreprocessSpec
from edgekd.data.synthetic import SyntheticFaces
from edgekd.errors import DataError
from edgekd.losses import LossSpec, build_objective
from edgekd.train.loop import Budget, _batch, lr_factor, train

SPEC = PreprocessSpec.preset("arcface")


class TinyStudent(nn.Module):
    embedding_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 8, stride=8), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.fc = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


@pytest.fixture(scope="module")
def data():
    ds = SyntheticFaces(num_identities=6, images_per_identity=4, seed=3)
    images = np.stack([ds[i].image for i in range(len(ds))])
    labels = np.array([ds[i].label for i in range(len(ds))])
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(len(ds), 8)).astype(np.float32)
    teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    return images, labels, teacher


def test_lr_schedule_known_values():
    b = Budget(steps=110, warmup_steps=10)
    assert lr_factor(0, b) == pytest.approx(0.1)
    assert lr_factor(9, b) == pytest.approx(1.0)
    assert lr_factor(10, b) == pytest.approx(1.0)
    assert lr_factor(60, b) == pytest.approx(0.5)
    assert lr_factor(110, b) == pytest.approx(0.0, abs=1e-12)


def test_flipped_images_get_flipped_teacher_embeddings(data):
    images, _, teacher = data
    flip_emb = -teacher
    idx, flips = np.array([0, 1, 2]), np.array([True, False, True])
    x, t = _batch(images, teacher, flip_emb, idx, flips, SPEC)
    np.testing.assert_array_equal(t.numpy(), np.stack([-teacher[0], teacher[1], -teacher[2]]))
    np.testing.assert_allclose(x[0].numpy(), SPEC.apply(images[:1, :, ::-1])[0], rtol=1e-6)


def _run(data, steps=25, seed=0):
    images, labels, teacher = data
    torch.manual_seed(0)
    student = TinyStudent()
    objective = build_objective([LossSpec("fc", 1.0, {"projection": True})], 8, int(labels.max()) + 1, 8)
    log = train(
        student,
        objective,
        images,
        labels,
        teacher,
        None,
        SPEC,
        Budget(steps=steps, batch_size=8, warmup_steps=2, seed=seed),
        progress=False,
    )
    return student, log


def test_trains_deterministically_and_reduces_the_loss(data):
    a, log_a = _run(data)
    b, _ = _run(data)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    first = np.mean([e["total"] for e in log_a.losses[:5]])
    last = np.mean([e["total"] for e in log_a.losses[-5:]])
    assert log_a.steps == 25 and last < first
    assert not a.training  # left in eval mode for evaluation/export


def test_bad_input(data):
    images, labels, teacher = data
    objective = build_objective([LossSpec("fc", 1.0, {"projection": True})], 8, 6, 8)
    with pytest.raises(DataError, match="empty"):
        train(TinyStudent(), objective, images[:0], labels[:0], teacher[:0], None, SPEC, Budget(steps=1))
    with pytest.raises(DataError, match="teacher embeddings"):
        train(TinyStudent(), objective, images, labels, teacher[:3], None, SPEC, Budget(steps=1))
