"""The interface every loss term implements, and the step schedules terms share.

A term is an ``nn.Module`` called as ``term(student, teacher, labels, step) -> scalar``. It declares
what it reads through two class flags, so :class:`~edgekd.losses.WeightedSum` can fill missing logits
once for all terms and fail early with a clear message.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from edgekd.losses.outputs import StudentOut, TeacherOut


class LossTerm(nn.Module):
    """Base class of the registered loss terms.

    ``needs_logits``: reads ``student.logits`` and ``teacher.logits`` ``(N, C)``.
    ``needs_teacher``: reads the teacher at all (margin heads do not).
    ``needs_teacher_features``: reads ``teacher.features`` (e.g. tokens), so the teacher must run online.
    """

    needs_logits: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = True
    needs_teacher_features: ClassVar[bool] = False

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        """Return the term's scalar loss for one batch (``labels`` ``(N,)`` int64, ``step`` >= 0)."""
        raise NotImplementedError


def linear_ramp(step: int, steps: int, start: float = 0.0, end: float = 1.0) -> float:
    """``start`` at step 0, moving linearly to ``end`` at ``steps``, then constant (``steps <= 0``: ``end``).

    >>> linear_ramp(50, 100), linear_ramp(500, 100), linear_ramp(3, 0)
    (0.5, 1.0, 1.0)
    """
    if steps <= 0:
        return end
    frac = min(max(step, 0) / steps, 1.0)
    return start + (end - start) * frac


def require_logits(name: str, student: StudentOut, teacher: TeacherOut) -> tuple[Tensor, Tensor]:
    """``(student.logits, teacher.logits)`` with matching shapes, or ValueError saying how to get them."""
    if student.logits is None or teacher.logits is None:
        missing = "student" if student.logits is None else "teacher"
        raise ValueError(
            f"loss '{name}' needs {missing} logits: list a margin head (arcface/cosface) for the student and "
            "give a teacher without a classifier class centres (WeightedSum.set_teacher_centres)"
        )
    if student.logits.shape != teacher.logits.shape:
        raise ValueError(
            f"loss '{name}': student logits {tuple(student.logits.shape)} and teacher logits "
            f"{tuple(teacher.logits.shape)} differ in shape"
        )
    return student.logits, teacher.logits.detach()


def masked_log_softmax(x: Tensor, mask: Tensor) -> Tensor:
    """log-softmax of ``x`` ``(N, C)`` over the entries in ``mask`` only; 0 outside it (and in empty rows).

    Returning 0 rather than ``-inf`` outside the mask keeps forward values and gradients finite.
    """
    keep = mask | ~mask.any(dim=1, keepdim=True)  # empty rows: any finite values, zeroed below
    out = torch.log_softmax(x.masked_fill(~keep, float("-inf")), dim=1)
    return out.masked_fill(~mask, 0.0)


def kl_divergence(log_p: Tensor, log_q: Tensor, mask: Tensor | None = None) -> Tensor:
    """Row-wise ``KL(p ‖ q) = Σ_c p_c (log p_c − log q_c)`` from log-probabilities ``(N, C)`` → ``(N,)``.

    Only entries in ``mask`` ``(N, C)`` count (all when ``None``); entries with ``p_c = 0`` contribute 0,
    as the definition says, without producing NaN.
    """
    p = log_p.exp()
    keep = p > 0 if mask is None else mask & (p > 0)
    zero = torch.zeros_like(p)
    return torch.where(keep, p * (torch.where(keep, log_p, zero) - torch.where(keep, log_q, zero)), zero).sum(
        1
    )
