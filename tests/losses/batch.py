"""Random student/teacher outputs of small sizes for the loss tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgekd.losses.outputs import StudentOut, TeacherOut

N, D, C = 8, 16, 10


@dataclass
class Batch:
    student: StudentOut
    teacher: TeacherOut
    labels: torch.Tensor


def random_batch(seed: int = 0, n: int = N, d: int = D, c: int = C, teacher_dim: int | None = None) -> Batch:
    """Student outputs requiring grad, a teacher of ``teacher_dim`` (default ``d``), repeated labels."""
    g = torch.Generator().manual_seed(seed)
    student = StudentOut(
        embedding=torch.randn(n, d, generator=g).requires_grad_(),
        logits=(4 * torch.randn(n, c, generator=g)).requires_grad_(),
    )
    teacher = TeacherOut(
        embedding=torch.randn(n, teacher_dim or d, generator=g), logits=4 * torch.randn(n, c, generator=g)
    )
    labels = torch.randint(0, c // 2, (n,), generator=g)  # few identities: every batch has positives
    return Batch(student, teacher, labels)


def identical_batch(seed: int = 0, n: int = N, d: int = D, c: int = C) -> Batch:
    """A batch whose student outputs equal the teacher's."""
    b = random_batch(seed, n, d, c)
    student = StudentOut(
        b.teacher.embedding.clone().requires_grad_(), b.teacher.logits.clone().requires_grad_()
    )
    return Batch(student, b.teacher, b.labels)
