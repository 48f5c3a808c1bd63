"""L2 embedding distillation (the "hint" loss of FitNets, Romero et al., ICLR 2015, arXiv 1412.6550).

    L = 1/N · Σ_i ‖ f̂_s,i − f̂_t,i ‖²₂         f̂ = f / ‖f‖  (``normalize=True``, the default)

``f_s`` ``(N, D_s)`` student embeddings, projected to ``D_t`` when ``projection=True``; ``f_t``
``(N, D_t)`` teacher embeddings. On unit vectors this equals ``2·(1 − cos)``; ``normalize=False``
compares the raw embeddings (the "raw L2 feature distillation" baseline).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.projection import EmbeddingTerm


class FeatureL2(EmbeddingTerm):
    """Squared L2 distance between (normalised) student and teacher embeddings, batch mean.

    >>> term = FeatureL2(normalize=True)
    """

    def __init__(
        self,
        normalize: bool = True,
        projection: bool = False,
        projection_bias: bool = False,
        projection_bn: bool = False,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
    ):
        super().__init__("l2", projection, student_dim, teacher_dim, projection_bias, projection_bn)
        self.normalize = normalize

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        f_s, f_t = self.embeddings(student, teacher)
        if self.normalize:
            f_s, f_t = F.normalize(f_s, dim=1), F.normalize(f_t, dim=1)
        return (f_s - f_t).pow(2).sum(dim=1).mean()
