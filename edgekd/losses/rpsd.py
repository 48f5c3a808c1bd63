"""Relation-Based Pairwise Similarity Distillation, RPSD (Mishra & Uikey, IJCB 2025,
https://arxiv.org/abs/2508.11376).

Only the abstract is available: RPSD "captures relational information through pairwise similarity
relationships, employing a memory bank mechanism and a sample mining strategy". Our reading
(docs/methods/unified_kd.md), every choice an option. With unit embeddings ``ŝ`` (student, projected to
``D_t`` when ``projection=True``) and ``t̂`` (teacher), each ``(N, D_t)``, and the bank
``B`` ``(M, D_t)`` of past teacher embeddings, the keys are the batch ∪ bank:

    S_t = t̂ · [t̂; B]ᵀ          (N, N+M) teacher similarities
    S_s = ŝ · [k̂; B]ᵀ          (N, N+M) student similarities, k̂ = ŝ (batch_keys="student") or t̂

For each anchor ``i`` the kept columns ``K_i`` are all its positives (same label, self excluded) and
its ``num_negatives`` hardest negatives (highest teacher similarity), and

    kind="kl":  L = 1/N' · Σ_i KL(softmax_{K_i}(S_t,i / τ) ‖ softmax_{K_i}(S_s,i / τ))      τ = 0.1
    kind="mse": L = mean over kept (i, j) of (S_s,ij − S_t,ij)²

(``N'``: anchors with at least one kept column). After the loss, in training mode, the batch's teacher
embeddings and labels are enqueued (FIFO, ``bank_size`` slots, 0 = in-batch only).

Why the bank holds teacher embeddings: the teacher is frozen, so its old embeddings are exactly what it
would output now, whereas stored student embeddings go stale as the student trains (MoCo needs a
momentum encoder for this reason). The student's similarities to the bank are therefore cross-model
(student embedding vs teacher anchors), which also pulls the student into the teacher's space; it is
why RPSD needs equal dimensions or a projection.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from edgekd.errors import ConfigError
from edgekd.losses.base import kl_divergence, masked_log_softmax
from edgekd.losses.memory_bank import MemoryBank
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.projection import EmbeddingTerm


def mine_pairs(
    sim_t: Tensor, labels: Tensor, key_labels: Tensor, num_negatives: int
) -> tuple[Tensor, Tensor]:
    """``(positives, negatives)`` masks ``(N, K)`` over the keys of ``(N, K)`` teacher similarities.

    The first ``N`` keys are the batch itself (the diagonal is excluded). Positives: every key with the
    anchor's label (labels ``-1`` match nothing). Negatives: the ``num_negatives`` other keys most
    similar to the anchor under the teacher (all of them when fewer exist).
    """
    n, k = sim_t.shape
    eye = torch.zeros(n, k, dtype=torch.bool, device=sim_t.device)
    eye[torch.arange(n), torch.arange(n)] = True
    same = (labels.unsqueeze(1) == key_labels.unsqueeze(0)) & (labels >= 0).unsqueeze(1)
    positives = same & ~eye
    candidates = ~same & ~eye
    count = min(num_negatives, k)
    negatives = torch.zeros_like(candidates)
    if count:
        hardest = sim_t.detach().masked_fill(~candidates, float("-inf")).topk(count, dim=1).indices
        negatives.scatter_(1, hardest, True)
        negatives &= candidates  # rows with fewer candidates than `count` picked some -inf entries
    return positives, negatives


class RPSD(EmbeddingTerm):
    """Mined pairwise-similarity distillation against the batch and a teacher memory bank.

    >>> term = RPSD(kind="kl", tau=0.1, num_negatives=1024, bank_size=16384, teacher_dim=512)
    """

    def __init__(
        self,
        kind: Literal["kl", "mse"] = "kl",
        tau: float = 0.1,
        num_negatives: int = 1024,
        bank_size: int = 16384,
        batch_keys: Literal["student", "teacher"] = "student",
        projection: bool = False,
        projection_bias: bool = False,
        projection_bn: bool = False,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
    ):
        super().__init__("rpsd", projection, student_dim, teacher_dim, projection_bias, projection_bn)
        if kind not in ("kl", "mse"):
            raise ConfigError(f"rpsd: kind must be 'kl' or 'mse', got {kind!r}")
        if batch_keys not in ("student", "teacher"):
            raise ConfigError(f"rpsd: batch_keys must be 'student' or 'teacher', got {batch_keys!r}")
        if tau <= 0 or num_negatives < 0 or bank_size < 0:
            raise ConfigError(
                f"rpsd: need tau > 0, num_negatives >= 0, bank_size >= 0; "
                f"got {tau}, {num_negatives}, {bank_size}"
            )
        dim = teacher_dim or student_dim
        if bank_size and dim is None:
            raise ConfigError("rpsd: a memory bank needs teacher_dim (build_objective passes it)")
        self.kind, self.tau, self.num_negatives, self.batch_keys = kind, tau, num_negatives, batch_keys
        self.bank = MemoryBank(bank_size, dim) if bank_size and dim else None

    def similarities(self, student: StudentOut, teacher: TeacherOut) -> tuple[Tensor, Tensor, Tensor]:
        """``(S_s, S_t, bank_labels)``: ``(N, N+M)`` student and teacher similarities, ``(M,)`` labels."""
        f_s, f_t = self.embeddings(student, teacher)
        s, t = F.normalize(f_s, dim=1), F.normalize(f_t, dim=1)  # (N, D)
        if self.bank is not None:
            bank, bank_labels = self.bank.contents()  # (M, D), (M,)
        else:
            bank, bank_labels = t.new_zeros(0, t.shape[1]), torch.zeros(0, dtype=torch.long, device=t.device)
        sim_t = t @ torch.cat([t, bank]).T  # (N, N+M)
        sim_s = s @ torch.cat([s if self.batch_keys == "student" else t, bank]).T  # (N, N+M)
        return sim_s, sim_t, bank_labels

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        sim_s, sim_t, bank_labels = self.similarities(student, teacher)
        positives, negatives = mine_pairs(sim_t, labels, torch.cat([labels, bank_labels]), self.num_negatives)
        keep = positives | negatives  # (N, N+M)
        if self.kind == "kl":
            log_t = masked_log_softmax(sim_t / self.tau, keep)
            log_s = masked_log_softmax(sim_s / self.tau, keep)
            rows = keep.any(dim=1)
            loss = kl_divergence(log_t, log_s, keep).sum() / rows.sum().clamp_min(1)
        else:
            loss = ((sim_s - sim_t).pow(2) * keep).sum() / keep.sum().clamp_min(1)
        if self.training and self.bank is not None:
            self.bank.enqueue(F.normalize(teacher.embedding.detach(), dim=1), labels)
        return loss
