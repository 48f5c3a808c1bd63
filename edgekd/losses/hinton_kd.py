"""Logit distillation (Hinton et al., 2015, https://arxiv.org/abs/1503.02531).

    L = T² · 1/N · Σ_i KL(softmax(z_t,i / T) ‖ softmax(z_s,i / T))

``z_s``, ``z_t``: student and teacher logits ``(N, C)``. The ``T²`` factor keeps the gradient scale
independent of the temperature. For face models the logits are ``s·cos`` of a normalised classifier
(``s = 64``), so ``T = 4`` gives an effective scale of 16.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgekd.errors import ConfigError
from edgekd.losses.base import LossTerm, kl_divergence, require_logits
from edgekd.losses.outputs import StudentOut, TeacherOut


class HintonKD(LossTerm):
    """Softened-softmax KD over the student's and teacher's class logits ``(N, C)``.

    >>> term = HintonKD(T=4.0)
    """

    needs_logits = True

    def __init__(self, T: float = 4.0):
        super().__init__()
        if T <= 0:
            raise ConfigError(f"kd: temperature T must be > 0, got {T}")
        self.T = T

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        z_s, z_t = require_logits("kd", student, teacher)
        log_ps = torch.log_softmax(z_s / self.T, dim=1)
        log_pt = torch.log_softmax(z_t / self.T, dim=1)
        return self.T**2 * kl_divergence(log_pt, log_ps).mean()
