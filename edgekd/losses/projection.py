"""Student → teacher embedding projection for instance-level terms whose dimensions differ.

``g(f_s) = BN(W f_s + b)`` maps ``(N, D_s)`` to ``(N, D_t)`` (bias and BatchNorm optional). A term
built with ``projection=True`` owns its projection, so it is trained with the loss and saved in the
loss state, and the student model never contains it: the exported student still outputs its own
``D_s``-dimensional embedding. The projection exists only on the loss path, to make ``f_s`` comparable
with ``f_t``.

Without ``projection``, mismatched dimensions fail when the term is built (dimensions known) or at the
first batch, naming both sizes.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgekd.errors import ConfigError
from edgekd.losses.base import LossTerm
from edgekd.losses.outputs import StudentOut, TeacherOut


class EmbeddingProjection(nn.Module):
    """``(N, student_dim)`` → ``(N, teacher_dim)``: Linear (optionally with bias), optionally + BatchNorm1d.

    >>> import torch
    >>> EmbeddingProjection(128, 512)(torch.randn(4, 128)).shape
    torch.Size([4, 512])
    """

    def __init__(self, student_dim: int, teacher_dim: int, bias: bool = False, batchnorm: bool = False):
        super().__init__()
        self.linear = nn.Linear(student_dim, teacher_dim, bias=bias)
        self.bn = nn.BatchNorm1d(teacher_dim) if batchnorm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.linear(x))


def build_projection(
    loss: str,
    projection: bool,
    student_dim: int | None,
    teacher_dim: int | None,
    bias: bool = False,
    batchnorm: bool = False,
) -> EmbeddingProjection | None:
    """The projection a term owns, or ``None``.

    ConfigError when ``projection`` lacks a dimension, or without it when the dimensions differ.
    """
    if projection:
        if student_dim is None or teacher_dim is None:
            raise ConfigError(
                f"loss '{loss}': projection=true needs student_dim and teacher_dim "
                f"(build_objective passes them), got {student_dim} and {teacher_dim}"
            )
        return EmbeddingProjection(student_dim, teacher_dim, bias=bias, batchnorm=batchnorm)
    if student_dim is not None and teacher_dim is not None and student_dim != teacher_dim:
        raise ConfigError(_mismatch(loss, student_dim, teacher_dim))
    return None


def match_teacher(loss: str, projection: nn.Module | None, f_s: Tensor, f_t: Tensor) -> Tensor:
    """Project ``f_s`` ``(N, D_s)`` to the teacher's ``D_t`` if the term has a projection; check shapes."""
    if projection is not None:
        f_s = projection(f_s)
    if f_s.shape != f_t.shape:
        raise ValueError(_mismatch(loss, f_s.shape[-1], f_t.shape[-1], shapes=(f_s.shape, f_t.shape)))
    return f_s


def _mismatch(loss: str, student_dim: int, teacher_dim: int, shapes: tuple = ()) -> str:
    detail = f" (shapes {tuple(shapes[0])} vs {tuple(shapes[1])})" if shapes else ""
    return (
        f"loss '{loss}': student embedding size {student_dim} != teacher embedding size {teacher_dim}"
        f"{detail}; set projection: true on this loss to learn a {student_dim}->{teacher_dim} projection"
    )


class EmbeddingTerm(LossTerm):
    """Base of the terms comparing student and teacher embeddings; owns the optional projection."""

    def __init__(
        self,
        name: str,
        projection: bool = False,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
        projection_bias: bool = False,
        projection_bn: bool = False,
    ):
        super().__init__()
        self.loss_name = name
        self.projection = build_projection(
            name, projection, student_dim, teacher_dim, projection_bias, projection_bn
        )

    def embeddings(self, student: StudentOut, teacher: TeacherOut) -> tuple[Tensor, Tensor]:
        """``(f_s, f_t)``, both ``(N, D_t)``: the (projected) student and the detached teacher embedding."""
        f_t = teacher.embedding.detach()
        return match_teacher(self.loss_name, self.projection, student.embedding, f_t), f_t
