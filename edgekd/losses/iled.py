"""Instance-Level Embedding Distillation, ILED (Mishra & Uikey, IJCB 2025, https://arxiv.org/abs/2508.11376).

Only the abstract is available: ILED "aligns individual feature embeddings by leveraging a dynamic
hard mining strategy". This is our reading of it (docs/methods/unified_kd.md), every choice an option.
Per-sample alignment error on normalised embeddings ``f̂ = f / ‖f‖``:

    e_i = 1 − cos(f_s,i, f_t,i)          metric="cosine"
    e_i = ‖f̂_s,i − f̂_t,i‖²₂ (= 2·e_cos)   metric="l2"

    L = 1/N · Σ_i w_i · e_i

Dynamic hard mining sets the weights ``w`` ``(N,)`` (no gradient flows through them, mean 1):

- ``mode="power"``: ``w_i ∝ (e_i / ē)^γ``, normalised to mean 1; ``γ`` anneals linearly from
  ``gamma0`` to ``gamma1`` over ``anneal_steps`` (``γ = 0`` is the plain mean).
- ``mode="topk"``: only the ``k = ⌈ρ·N⌉`` hardest samples count (``w = N/k`` on them, 0 elsewhere);
  ``ρ`` anneals linearly from 1.0 to ``k_min`` over ``anneal_steps``.

``f_s`` ``(N, D_s)``, projected to ``D_t`` with ``projection=True``; ``f_t`` ``(N, D_t)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from edgekd.errors import ConfigError
from edgekd.losses.base import linear_ramp
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.projection import EmbeddingTerm


class ILED(EmbeddingTerm):
    """Hard-mined per-sample embedding alignment; see the module docstring.

    >>> term = ILED(metric="cosine", mode="power", gamma0=0.0, gamma1=2.0, anneal_steps=10_000)
    """

    def __init__(
        self,
        metric: Literal["cosine", "l2"] = "cosine",
        mode: Literal["power", "topk"] = "power",
        gamma0: float = 0.0,
        gamma1: float = 2.0,
        k_min: float = 0.5,
        anneal_steps: int = 10_000,
        projection: bool = False,
        projection_bias: bool = False,
        projection_bn: bool = False,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
    ):
        super().__init__("iled", projection, student_dim, teacher_dim, projection_bias, projection_bn)
        if metric not in ("cosine", "l2"):
            raise ConfigError(f"iled: metric must be 'cosine' or 'l2', got {metric!r}")
        if mode not in ("power", "topk"):
            raise ConfigError(f"iled: mode must be 'power' or 'topk', got {mode!r}")
        if min(gamma0, gamma1) < 0 or not 0 < k_min <= 1 or anneal_steps < 0:
            raise ConfigError(
                f"iled: need gamma0, gamma1 >= 0, 0 < k_min <= 1, anneal_steps >= 0; got "
                f"{gamma0}, {gamma1}, {k_min}, {anneal_steps}"
            )
        self.metric, self.mode = metric, mode
        self.gamma0, self.gamma1, self.k_min, self.anneal_steps = gamma0, gamma1, k_min, anneal_steps

    def gamma(self, step: int) -> float:
        """Focusing exponent of ``mode="power"`` at ``step``."""
        return linear_ramp(step, self.anneal_steps, self.gamma0, self.gamma1)

    def keep_ratio(self, step: int) -> float:
        """Fraction of the batch ``mode="topk"`` keeps at ``step``."""
        return linear_ramp(step, self.anneal_steps, 1.0, self.k_min)

    def errors(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        """Per-sample alignment error ``(N,)`` of ``(N, D)`` embeddings."""
        if self.metric == "cosine":
            return 1.0 - F.cosine_similarity(f_s, f_t, dim=1, eps=1e-12)
        return (F.normalize(f_s, dim=1) - F.normalize(f_t, dim=1)).pow(2).sum(dim=1)

    def weights(self, errors: Tensor, step: int) -> Tensor:
        """Hard-mining weights ``(N,)``, mean 1, without gradient."""
        e = errors.detach()
        n = e.shape[0]
        if self.mode == "topk":
            k = max(1, math.ceil(self.keep_ratio(step) * n - 1e-9))
            w = torch.zeros_like(e)
            w[e.topk(k).indices] = n / k
            return w
        w = (e / e.mean().clamp_min(1e-12)).pow(self.gamma(step))
        mean = w.mean()
        return w / mean if mean > 0 else torch.ones_like(e)

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        f_s, f_t = self.embeddings(student, teacher)
        e = self.errors(f_s, f_t)
        return (self.weights(e, step) * e).mean()
