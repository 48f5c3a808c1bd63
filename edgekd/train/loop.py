"""A minimal offline-distillation loop: student + objective + teacher cache → trained student.

It is what the KD-method benchmark needs and the core that ``edgekd distill``/``distill-qat`` grow
around (checkpoints, resume, QAT, DDP come with them). The teacher never runs here: its embeddings
(and those of the mirror images) come from a :class:`TeacherCache`, so horizontal-flip augmentation
uses the teacher embedding of the *flipped* image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import DataError
from edgekd.losses.objective import WeightedSum
from edgekd.losses.outputs import StudentOut, TeacherOut


@dataclass(frozen=True)
class Budget:
    """Same budget for every method compared: steps, batch, optimiser and seed."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-4  # backbone: pretrained, so a gentle rate
    head_lr: float = 1e-2  # margin heads and projections start from scratch
    weight_decay: float = 5e-4
    warmup_steps: int = 30
    grad_clip: float = 5.0
    flip: bool = True
    seed: int = 0


@dataclass
class TrainLog:
    steps: int = 0
    seconds: float = 0.0
    losses: list[dict[str, float]] = field(default_factory=list)


def lr_factor(step: int, budget: Budget) -> float:
    """The trainer's warm-up + cosine schedule for this budget (one schedule for loop and trainer)."""
    from edgekd.train.trainer import lr_factor as warmup_cosine

    return warmup_cosine(step, budget.steps, budget.warmup_steps)


def _batch(
    images: np.ndarray,
    teacher: np.ndarray,
    teacher_flip: np.ndarray | None,
    idx: np.ndarray,
    flips: np.ndarray,
    spec: PreprocessSpec,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed ``(B, 3, H, W)`` student input and the matching ``(B, D_t)`` teacher embeddings."""
    imgs = images[idx].copy()
    imgs[flips] = imgs[flips, :, ::-1]
    t = teacher[idx].copy()
    if teacher_flip is not None:
        t[flips] = teacher_flip[idx[flips]]
    x = torch.from_numpy(spec.apply(imgs)).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(np.ascontiguousarray(t, np.float32))


def train(
    student: nn.Module,
    objective: WeightedSum,
    images: np.ndarray,
    labels: np.ndarray,
    teacher_emb: np.ndarray,
    teacher_flip: np.ndarray | None,
    spec: PreprocessSpec,
    budget: Budget,
    progress: bool = True,
) -> TrainLog:
    """Train ``student`` (and the objective's heads/projections) in place for ``budget.steps`` steps.

    ``images`` ``(N, H, W, 3)`` uint8 RGB, ``labels`` ``(N,)`` class ids, ``teacher_emb`` ``(N, D_t)``.
    """
    if len(images) == 0:
        raise DataError("the training set is empty")
    if not (len(images) == len(labels) == len(teacher_emb)):
        raise DataError(f"{len(images)} images, {len(labels)} labels, {len(teacher_emb)} teacher embeddings")
    rng = np.random.default_rng(budget.seed)
    torch.manual_seed(budget.seed)
    groups = [
        {"params": list(student.parameters()), "lr": budget.lr},
        {"params": list(objective.parameters()), "lr": budget.head_lr},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=budget.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    log, start = TrainLog(), time.perf_counter()
    student.to(memory_format=torch.channels_last)  # 1.5x faster depthwise convs on CPU (measured)
    student.train()
    objective.train()
    bar = tqdm(range(budget.steps), desc="train", unit="step", disable=not progress)
    for step in bar:
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * lr_factor(step, budget)
        idx = rng.choice(len(images), budget.batch_size, replace=len(images) < budget.batch_size)
        flips = rng.random(len(idx)) < 0.5 if budget.flip else np.zeros(len(idx), bool)
        x, t = _batch(images, teacher_emb, teacher_flip, idx, flips, spec)
        total, parts = objective(
            StudentOut(embedding=student(x)), TeacherOut(embedding=t), labels_t[idx], step
        )
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"non-finite loss at step {step}: { {k: float(v) for k, v in parts.items()} }"
            )
        opt.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], budget.grad_clip)
        opt.step()
        entry = {"total": float(total.detach()), **{k: float(v) for k, v in parts.items()}}
        log.losses.append(entry)
        bar.set_postfix(
            loss=f"{entry['total']:.3f}", img_s=f"{(step + 1) * len(idx) / (time.perf_counter() - start):.0f}"
        )
    log.steps, log.seconds = budget.steps, time.perf_counter() - start
    student.eval()
    return log
