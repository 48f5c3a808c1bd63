"""Grouped Knowledge Distillation (Zhao et al., AAAI 2023, https://arxiv.org/abs/2304.04462).

With softened probabilities ``p = softmax(z / T)`` ``(N, C)``, the classes of each sample are ranked by
probability (the student's by default, ``rank_by="teacher"`` for the teacher's), the target class
forced first. The Primary group ``P`` is the top-``K`` classes, ``K`` the smallest count whose
cumulative probability reaches ``τ``; the Secondary group ``S`` is the rest. With group masses
``m_G = Σ_{c∈G} p_c`` and in-group distributions ``p^G = p|_G / m_G``:

    Binary-KD    B = KL([m_P^t, m_S^t] ‖ [m_P^s, m_S^s])
    Primary-KD   P = KL(p_t^P ‖ p_s^P)
    Secondary-KD S = KL(p_t^S ‖ p_s^S)
    L_GKD = w(step) · T² · 1/N · Σ_i (α·B_i + β·P_i + λ·S_i)      α = 1, β = 8, λ = 0

By the chain rule of KL, full KD is ``KL(p_t ‖ p_s) = B + m_P^t·P + m_S^t·S``: GKD replaces the
teacher-mass weights by constants, up-weighting the primary classes and dropping the secondary ones,
which the paper finds to be "the culprit restricting KD at the bottleneck" for face recognition.

``K`` is chosen by ``k_mode``:

- ``"batch"`` (as the official code): from the batch-mean cumulative probability of the ranked
  classes, the smallest ``K`` reaching ``τ``, rounded up to a multiple of ``k_granularity`` (100);
  one ``K`` for the whole batch.
- ``"sample"``: each sample's own smallest ``K``.
- ``"fixed"``: ``K = k``.

``τ >= 1`` puts every class in ``P`` (then ``L_GKD = β · KD``). The ranking is not differentiated.

``w(step)`` ramps linearly from 0 to 1 over ``ramp_steps`` (0: no ramp). The paper trains with
``CE + w·L_GKD``; the margin CE is its own term, so the ramp lives here, in the GKD term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from edgekd.errors import ConfigError
from edgekd.losses.base import LossTerm, kl_divergence, linear_ramp, masked_log_softmax, require_logits
from edgekd.losses.outputs import StudentOut, TeacherOut

KMode = Literal["batch", "sample", "fixed"]


@dataclass(frozen=True)
class GroupedKL:
    """Per-sample parts of the grouped KL, each ``(N,)``; teacher masses of the two groups."""

    binary: Tensor
    primary: Tensor
    secondary: Tensor
    teacher_mass_primary: Tensor
    teacher_mass_secondary: Tensor


def primary_mask(
    probs: Tensor,
    labels: Tensor,
    tau: float,
    k_mode: KMode = "batch",
    k: int = 100,
    k_granularity: int = 100,
) -> Tensor:
    """``(N, C)`` bool: the classes of each row's Primary group (see the module docstring).

    ``probs`` ``(N, C)`` ranks the classes (it is detached); ``labels`` ``(N,)`` are forced first
    (``-1``: not forced).
    """
    n, c = probs.shape
    probs = probs.detach()
    keys = probs.clone()
    rows = torch.nonzero(labels >= 0).squeeze(1)
    keys[rows, labels[rows]] = 2.0  # above any probability: the target ranks first
    order = keys.argsort(dim=1, descending=True, stable=True)  # (N, C) class ids by rank
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(c, device=probs.device).expand(n, c))
    cum = probs.gather(1, order).cumsum(dim=1)  # (N, C) cumulative probability of the top-k
    if k_mode == "fixed":
        sizes = torch.full((n,), min(k, c), device=probs.device)
    elif tau >= 1.0:
        sizes = torch.full((n,), c, device=probs.device)
    elif k_mode == "sample":
        sizes = ((cum < tau).sum(dim=1) + 1).clamp(max=c)  # (N,)
    else:
        needed = int((cum.mean(dim=0) < tau).sum()) + 1
        size = min(c, math.ceil(needed / k_granularity) * k_granularity)
        sizes = torch.full((n,), size, device=probs.device)
    return ranks < sizes.unsqueeze(1)


def _group_log_masses(x: Tensor, primary: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, 2)`` log-masses ``log [m_P, m_S]`` of ``softmax(x)``, and ``(N, 2)`` group non-empty flags."""
    groups = torch.stack([primary, ~primary], dim=1)  # (N, 2, C)
    present = groups.any(dim=2)  # (N, 2)
    keep = groups | ~present.unsqueeze(2)
    masked = x.unsqueeze(1).masked_fill(~keep, float("-inf"))  # (N, 2, C)
    log_mass = torch.logsumexp(masked, dim=2) - torch.logsumexp(x, dim=1, keepdim=True)
    return log_mass.masked_fill(~present, 0.0), present


def grouped_kl(z_s: Tensor, z_t: Tensor, primary: Tensor, T: float) -> GroupedKL:
    """Binary, Primary and Secondary KL per sample for logits ``(N, C)`` and a Primary mask ``(N, C)``.

    Empty groups contribute 0. No ``T²`` factor, no weights.
    """
    xs, xt = z_s / T, z_t / T
    lm_s, present = _group_log_masses(xs, primary)
    lm_t, _ = _group_log_masses(xt, primary)
    binary = kl_divergence(lm_t, lm_s, present)
    mass_t = torch.where(present, lm_t.exp(), torch.zeros_like(lm_t))
    primary_kl, secondary_kl = (
        kl_divergence(masked_log_softmax(xt, mask), masked_log_softmax(xs, mask), mask)
        for mask in (primary, ~primary)
    )
    return GroupedKL(binary, primary_kl, secondary_kl, mass_t[:, 0], mass_t[:, 1])


class GroupedKD(LossTerm):
    """GKD over student and teacher logits ``(N, C)``; see the module docstring for every option.

    >>> term = GroupedKD(T=4.0, tau=0.93, alpha=1.0, beta=8.0, lam=0.0, ramp_steps=1000)
    """

    needs_logits = True

    def __init__(
        self,
        T: float = 4.0,
        tau: float = 0.93,
        alpha: float = 1.0,
        beta: float = 8.0,
        lam: float = 0.0,
        rank_by: Literal["student", "teacher"] = "student",
        k_mode: KMode = "batch",
        k: int = 100,
        k_granularity: int = 100,
        ramp_steps: int = 0,
    ):
        super().__init__()
        if T <= 0 or tau <= 0:
            raise ConfigError(f"gkd: need T > 0 and tau > 0, got T={T}, tau={tau}")
        if rank_by not in ("student", "teacher"):
            raise ConfigError(f"gkd: rank_by must be 'student' or 'teacher', got {rank_by!r}")
        if k_mode not in ("batch", "sample", "fixed"):
            raise ConfigError(f"gkd: k_mode must be 'batch', 'sample' or 'fixed', got {k_mode!r}")
        if k < 1 or k_granularity < 1 or ramp_steps < 0:
            raise ConfigError(
                f"gkd: need k, k_granularity >= 1, ramp_steps >= 0; got {k}, {k_granularity}, {ramp_steps}"
            )
        self.T, self.tau, self.alpha, self.beta, self.lam = T, tau, alpha, beta, lam
        self.rank_by, self.k_mode, self.k, self.k_granularity = rank_by, k_mode, k, k_granularity
        self.ramp_steps = ramp_steps

    def parts(self, z_s: Tensor, z_t: Tensor, labels: Tensor) -> GroupedKL:
        """Group the classes and return the per-sample grouped KL (unweighted, without ``T²``)."""
        ranking = z_s if self.rank_by == "student" else z_t
        probs = torch.softmax(ranking.detach() / self.T, dim=1)
        mask = primary_mask(probs, labels, self.tau, self.k_mode, self.k, self.k_granularity)
        return grouped_kl(z_s, z_t, mask, self.T)

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        z_s, z_t = require_logits("gkd", student, teacher)
        g = self.parts(z_s, z_t, labels)
        per_sample = self.alpha * g.binary + self.beta * g.primary + self.lam * g.secondary
        return linear_ramp(step, self.ramp_steps) * self.T**2 * per_sample.mean()
