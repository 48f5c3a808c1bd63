"""The training objective: a weighted sum of named loss terms, built from validated specs.

    L = Σ_k w_k · L_k(student, teacher, labels, step)

Terms reading logits get them filled once per batch when the outputs lack them: the student's from the
objective's margin head (``s·cos θ``, no margin), the teacher's from class centres
(:meth:`WeightedSum.set_teacher_centres`, for embedding-only teachers).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from edgekd.errors import ConfigError
from edgekd.losses import REGISTRY, LossSpec
from edgekd.losses.base import LossTerm
from edgekd.losses.margin import CombinedMarginHead
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.teacher_logits import centre_logits


class WeightedSum(nn.Module):
    """``forward(student, teacher, labels, step) -> (total, {name: unweighted value})``.

    ``terms`` and ``weights`` are keyed by the same names (the loss name, ``name_2``... for repeats).
    The values in the log dict are detached, for logging.

    >>> objective = build_objective([LossSpec("arcface"), LossSpec("fc")], 128, 1000, teacher_dim=128)
    >>> list(objective.terms), objective.head.num_classes
    (['arcface', 'fc'], 1000)
    """

    teacher_centres: Tensor | None

    def __init__(self, terms: Mapping[str, LossTerm], weights: Mapping[str, float]):
        super().__init__()
        if set(terms) != set(weights):
            raise ValueError(f"terms {sorted(terms)} and weights {sorted(weights)} name different losses")
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = dict(weights)
        self.needs_logits = any(getattr(t, "needs_logits", False) for t in self.terms.values())
        # Derived from the teacher cache, so not saved: call set_teacher_centres again when resuming.
        self.register_buffer("teacher_centres", None, persistent=False)
        self.centre_scale = 64.0

    @property
    def head(self) -> CombinedMarginHead | None:
        """The first margin term's head (gives the student's logits), or ``None``.

        A property, not an attribute: assigning the module would register its weights a second time.
        """
        for term in self.terms.values():
            if isinstance(getattr(term, "head", None), CombinedMarginHead):
                return term.head
        return None

    def set_teacher_centres(self, centres: Tensor, s: float | None = None) -> None:
        """Use ``(C, D_t)`` class centres for teacher logits ``s·cos`` (``s``: the head's, else 64)."""
        self.teacher_centres = centres.detach().float()
        self.centre_scale = s if s is not None else (self.head.s if self.head is not None else 64.0)

    def forward(
        self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.needs_logits and student.logits is None and self.head is not None:
            student = dataclasses.replace(student, logits=self.head.logits(student.embedding))
        if self.needs_logits and teacher.logits is None and self.teacher_centres is not None:
            logits = centre_logits(teacher.embedding.detach(), self.teacher_centres, self.centre_scale)
            teacher = dataclasses.replace(teacher, logits=logits)
        total = torch.zeros((), device=student.embedding.device)
        logs: dict[str, Tensor] = {}
        for name, term in self.terms.items():
            value = term(student, teacher, labels, step)
            logs[name] = value.detach()
            total = total + self.weights[name] * value
        return total, logs


def build_objective(
    specs: Iterable[LossSpec], embedding_size: int, num_classes: int, teacher_dim: int | None = None
) -> WeightedSum:
    """Build every term of ``specs``, passing the dimensions their constructors ask for.

    ``embedding_size``: the student's ``D_s`` (also given as ``student_dim``); ``num_classes``: ``C`` of
    the margin heads; ``teacher_dim``: ``D_t`` (``None``: checked at the first batch instead).

    >>> build_objective([LossSpec("kd", params={"T": 2.0})], 128, 10).terms["kd"].T
    2.0
    """
    dims = {
        "embedding_size": embedding_size,
        "student_dim": embedding_size,
        "num_classes": num_classes,
        "teacher_dim": teacher_dim,
    }
    terms: dict[str, LossTerm] = {}
    weights: dict[str, float] = {}
    for spec in specs:
        cls = REGISTRY.resolve(spec.name)
        options = inspect.signature(cls).parameters
        key, n = spec.name, 2
        while key in terms:
            key, n = f"{spec.name}_{n}", n + 1
        terms[key] = cls(**{k: v for k, v in dims.items() if k in options}, **spec.params)
        weights[key] = spec.weight
    if not terms:
        raise ConfigError(f"no losses given; known losses: {', '.join(sorted(REGISTRY))}")
    return WeightedSum(terms, weights)
