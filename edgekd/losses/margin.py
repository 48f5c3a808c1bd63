"""Additive/multiplicative angular margin heads (ArcFace, CosFace) and their cross-entropy loss terms.

The head owns learnable class weights ``W`` ``(C, D)``. With ``θ_j`` the angle between the normalised
embedding and normalised ``W_j``, the logits are (one parameter set covers both families, as
arcface_torch's ``CombinedMarginLoss`` does):

    z_j = s · (cos(m1·θ_y + m2) − m3)   for the target column j = y
    z_j = s · cos θ_j                   otherwise

ArcFace (Deng et al., CVPR 2019, https://arxiv.org/abs/1801.07698): ``m2 = 0.5``. CosFace (Wang et
al., CVPR 2018, https://arxiv.org/abs/1801.09414): ``m3 = 0.4``. Where ``m1·θ + m2 > π`` the target
logit would stop decreasing in θ; there the head uses ``cos θ − m2·sin m2`` (the default) or, with
``easy_margin``, adds the margin only where ``cos θ > 0``, both as arcface_torch does.

As loss terms (registry names ``arcface``, ``cosface``) they compute the student's cross-entropy over
margin logits; labels ``-1`` (unknown identity) are ignored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekd.errors import ConfigError
from edgekd.losses.base import LossTerm
from edgekd.losses.outputs import StudentOut, TeacherOut


class CombinedMarginHead(nn.Module):
    """Normalised linear classifier with a combined angular margin on the target column.

    >>> head = CombinedMarginHead(128, 1000, m2=0.5)        # ArcFace
    >>> head(torch.randn(4, 128), torch.tensor([0, 1, 2, 3])).shape
    torch.Size([4, 1000])
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.0,
        m3: float = 0.0,
        easy_margin: bool = False,
    ):
        super().__init__()
        if embedding_size < 1 or num_classes < 1:
            raise ConfigError(
                f"margin head needs embedding_size, num_classes >= 1, got {embedding_size}, {num_classes}"
            )
        if s <= 0 or m1 <= 0 or m2 < 0 or m3 < 0:
            raise ConfigError(
                f"margin head needs s > 0, m1 > 0, m2 >= 0, m3 >= 0; got s={s}, m1={m1}, m2={m2}, m3={m3}"
            )
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.s, self.m1, self.m2, self.m3, self.easy_margin = s, m1, m2, m3, easy_margin
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size).normal_(0.0, 0.01))  # (C, D)
        # Beyond θ_max the angular margin is replaced by the fallback: θ_max = (π - m2) / m1.
        theta_max = (math.pi - m2) / m1
        self._cos_threshold = math.cos(theta_max) if theta_max < math.pi else -1.0
        self._fallback = m2 * math.sin(m2)

    def cosine(self, embedding: Tensor) -> Tensor:
        """``(N, D)`` embeddings → ``(N, C)`` cosines to the class weights."""
        return F.linear(F.normalize(embedding, dim=1), F.normalize(self.weight, dim=1))

    def logits(self, embedding: Tensor, labels: Tensor | None = None) -> Tensor:
        """``s·cos θ`` ``(N, C)``; with ``labels`` ``(N,)`` the target columns get the margin (-1: none)."""
        cos = self.cosine(embedding)
        if labels is None:
            return self.s * cos
        rows = torch.nonzero(labels >= 0).squeeze(1)
        cols = labels[rows]
        target = cos[rows, cols]
        cos = cos.index_put((rows, cols), self._margin(target))
        return self.s * cos

    def forward(self, embedding: Tensor, labels: Tensor) -> Tensor:
        return self.logits(embedding, labels)

    def _margin(self, cos: Tensor) -> Tensor:
        """cos θ ``(K,)`` of target columns → cos(m1·θ + m2) − m3, with the large-angle fallback."""
        if self.m1 == 1.0 and self.m2 == 0.0:
            return cos - self.m3
        if self.m1 == 1.0:  # cos(θ + m2) by the addition formula: no arccos, finite gradient
            sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
            margin = cos * math.cos(self.m2) - sin * math.sin(self.m2)
        else:
            theta = cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7).acos()
            margin = torch.cos(self.m1 * theta + self.m2)
        if self.easy_margin:
            margin = torch.where(cos > 0, margin, cos)
        else:
            margin = torch.where(cos > self._cos_threshold, margin, cos - self._fallback)
        return margin - self.m3


class MarginSoftmaxLoss(LossTerm):
    """Cross-entropy of the student's margin logits: ``L = CE(head(student.embedding, y), y)``.

    Reads ``student.embedding`` ``(N, D)`` and ``labels`` ``(N,)``; ignores the teacher.
    """

    needs_teacher = False

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float,
        m1: float,
        m2: float,
        m3: float,
        easy_margin: bool = False,
    ):
        super().__init__()
        self.head = CombinedMarginHead(embedding_size, num_classes, s, m1, m2, m3, easy_margin)

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        return F.cross_entropy(self.head(student.embedding, labels), labels, ignore_index=-1)


class ArcFaceLoss(MarginSoftmaxLoss):
    """ArcFace: additive angular margin ``s·cos(θ_y + m)``, ``s = 64``, ``m = 0.5`` (arXiv 1801.07698).

    >>> loss = ArcFaceLoss(embedding_size=128, num_classes=10)
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        m: float = 0.5,
        easy_margin: bool = False,
    ):
        super().__init__(embedding_size, num_classes, s=s, m1=1.0, m2=m, m3=0.0, easy_margin=easy_margin)


class CosFaceLoss(MarginSoftmaxLoss):
    """CosFace: additive cosine margin ``s·(cos θ_y − m)``, ``s = 64``, ``m = 0.4`` (arXiv 1801.09414).

    >>> loss = CosFaceLoss(embedding_size=128, num_classes=10)
    """

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.4):
        super().__init__(embedding_size, num_classes, s=s, m1=1.0, m2=0.0, m3=m)
