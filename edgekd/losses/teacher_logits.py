"""Teacher logits for teachers without a classifier (ONNX exports such as SFace).

The teacher's class weights are replaced by its class centres: the normalised mean of the normalised
teacher embeddings of each identity, ``c_k = normalize(Σ_{i: y_i = k} t̂_i)`` with ``t̂ = t / ‖t‖``.
Logits are then the scaled cosines to the centres, like a normalised classifier's:

    z_ik = s · (cos(t_i, c_k) − m3·[k = y_i])

so logit-based KD (``kd``, ``gkd``) works with any embedding-only teacher. Centres of this kind are
the "teacher class centres" of e.g. AdaDistill (Boutros et al., ECCV 2024, arXiv 2407.01332).

>>> import torch
>>> emb, labels = torch.randn(20, 16), torch.arange(20) % 4
>>> centres = class_centres(emb, labels, num_classes=4)   # (4, 16), unit rows
>>> centre_logits(emb, centres).shape
torch.Size([20, 4])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edgekd.errors import DataError


def class_centres(embeddings: Tensor | np.ndarray, labels: Tensor | np.ndarray, num_classes: int) -> Tensor:
    """``(N, D)`` teacher embeddings + ``(N,)`` labels in ``0..C-1`` → ``(C, D)`` unit-norm class centres.

    Raises DataError naming the classes without a sample, or labels outside ``0..C-1``.
    """
    emb = F.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)  # (N, D)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if emb.ndim != 2 or labels.shape != (emb.shape[0],):
        raise DataError(
            f"class_centres: need (N, D) embeddings and (N,) labels, "
            f"got {tuple(emb.shape)}, {tuple(labels.shape)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"class_centres: labels must lie in 0..{num_classes - 1}, "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    sums = torch.zeros(num_classes, emb.shape[1], dtype=emb.dtype).index_add_(0, labels, emb)  # (C, D)
    counts = torch.bincount(labels, minlength=num_classes)  # (C,)
    empty = torch.nonzero(counts == 0).squeeze(1).tolist()
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
        raise DataError(f"class_centres: {len(empty)} of {num_classes} classes have no sample: {shown}")
    return F.normalize(sums, dim=1)


def centre_logits(
    teacher_emb: Tensor, centres: Tensor, s: float = 64.0, labels: Tensor | None = None, m3: float = 0.0
) -> Tensor:
    """``(N, D)`` embeddings, ``(C, D)`` centres → ``(N, C)`` logits ``s·(cos − m3·[k = y])``.

    The CosFace margin ``m3`` is applied to the target column only when ``labels`` are given
    (labels ``-1`` get none).
    """
    cos = F.linear(F.normalize(teacher_emb, dim=1), F.normalize(centres.to(teacher_emb), dim=1))  # (N, C)
    if labels is not None and m3:
        margin = F.one_hot(labels.clamp_min(0), cos.shape[1]).to(cos) * (labels >= 0).unsqueeze(1).to(cos)
        cos = cos - m3 * margin
    return s * cos
