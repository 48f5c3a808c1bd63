"""Feature-consistency (cosine) embedding distillation, the FCD baseline of face KD (e.g. CoupleFace,
Liu et al., ECCV 2022, arXiv 2204.05502).

    L = 1/N · Σ_i (1 − cos(f_s,i, f_t,i))

``f_s`` ``(N, D_s)`` student embeddings, projected to ``D_t`` when ``projection=True``; ``f_t``
``(N, D_t)`` teacher embeddings. Scale-free: only the direction of the embedding is distilled, which is
all that cosine-similarity face matching uses.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.projection import EmbeddingTerm


class FeatureConsistency(EmbeddingTerm):
    """``1 − cos(f_s, f_t)``, batch mean.

    >>> term = FeatureConsistency()
    """

    def __init__(
        self,
        projection: bool = False,
        projection_bias: bool = False,
        projection_bn: bool = False,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
    ):
        super().__init__("fc", projection, student_dim, teacher_dim, projection_bias, projection_bn)

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        f_s, f_t = self.embeddings(student, teacher)
        return (1.0 - F.cosine_similarity(f_s, f_t, dim=1, eps=1e-12)).mean()
