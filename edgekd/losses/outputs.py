"""What a loss term sees: named model outputs, never module paths.

The training loop runs the student (and reads the teacher, usually from a
:class:`~edgekd.train.teacher_cache.TeacherCache`) and hands every term the same two records plus the
batch labels ``(N,)`` and the global step.

>>> import torch
>>> out = StudentOut(embedding=torch.zeros(8, 128))
>>> out.logits is None, out.features
(True, {})
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


def _check(kind: str, embedding: Tensor, logits: Tensor | None) -> None:
    if embedding.ndim != 2:
        raise ValueError(f"{kind}.embedding must be (N, D), got shape {tuple(embedding.shape)}")
    if logits is not None and (logits.ndim != 2 or logits.shape[0] != embedding.shape[0]):
        raise ValueError(
            f"{kind}.logits must be (N, C) with N = {embedding.shape[0]}, got shape {tuple(logits.shape)}"
        )


@dataclass(frozen=True)
class StudentOut:
    """Student outputs for one batch.

    ``embedding`` ``(N, D_s)`` raw (unnormalised) embeddings; ``logits`` ``(N, C)`` class logits or
    ``None`` (a :class:`~edgekd.losses.WeightedSum` fills them from its margin head when a term needs
    them); ``features`` named intermediate maps, e.g. ``{"stage3": (N, C3, H, W)}``.
    """

    embedding: Tensor
    logits: Tensor | None = None
    features: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check("StudentOut", self.embedding, self.logits)


@dataclass(frozen=True)
class TeacherOut:
    """Teacher outputs for one batch; same fields and shapes as :class:`StudentOut` (``D_t`` may differ).

    ONNX teachers have no classifier: leave ``logits`` as ``None`` and give the objective class centres
    (:func:`~edgekd.losses.teacher_logits.class_centres`, ``WeightedSum.set_teacher_centres``).
    Terms treat every teacher tensor as a constant (they detach it).
    """

    embedding: Tensor
    logits: Tensor | None = None
    features: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check("TeacherOut", self.embedding, self.logits)
