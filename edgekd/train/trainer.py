"""``edgekd distill`` / ``distill-qat``: KD losses + (optionally) PT2E QAT, checkpointed and resumable.

One step: draw the step's global batch (a pure function of seed and step), take this rank's slice, read
the teacher's embeddings from the cache (the mirrored image's when flipped), run the student (eager, or
the prepared QAT graph whose fake quantization mirrors the target's integer arithmetic), sum the
configured loss terms, clip, step. Every ``val_every`` steps the (fake-quant) student is evaluated on the
validation pairs; ``last.pt`` and ``best.pt`` are written atomically. A non-finite loss stops the run
with the step and the terms, and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from edgekd.config import to_dict
from edgekd.data import load_verification_set
from edgekd.distributed import DistInfo, barrier, init_from_env, rank_slice, shutdown
from edgekd.errors import ConfigError, EdgeKDError, ModelError
from edgekd.eval.runner import evaluate
from edgekd.losses import build_objective
from edgekd.losses.objective import WeightedSum
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.teacher_logits import class_centres
from edgekd.models import create_model, default_preprocess, detect_architecture, load_state_dict_file
from edgekd.quant import example_input, freeze, load_target, prepare, set_mode
from edgekd.quant.spec import TargetSpec
from edgekd.runtime import load_embedder
from edgekd.runtime.torch_backend import TorchEmbedder
from edgekd.train.batches import TrainSet, build_train_set, load_images, step_indices
from edgekd.train.checkpoint import read_checkpoint, save_checkpoint
from edgekd.train.config import DistillConfig
from edgekd.train.logs import RunLog
from edgekd.train.teacher_cache import TeacherCache

log = logging.getLogger(__name__)
CALIB_STEP = 1 << 30  # batch "steps" for observer calibration: a stream no training step draws from


class TrainingDiverged(EdgeKDError):
    """The loss became NaN/inf; the message names the step, the terms and the last good checkpoint."""


@dataclass
class TrainResult:
    out: Path
    step: int
    best_metric: float | None
    last_checkpoint: Path
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def lr_factor(step: int, steps: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``min_ratio`` at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_student(cfg: DistillConfig) -> tuple[nn.Module, str]:
    """The student module (with ``student_init`` weights) and its architecture name."""
    from edgekd.models import list_models
    from edgekd.runtime import resolve_model_path

    init = str(resolve_model_path(cfg.student_init)) if cfg.student_init else None
    if cfg.student in list_models():
        arch = cfg.student
    elif Path(cfg.student).is_file():  # a state_dict file: architecture from its keys, or student_arch
        init = cfg.student
        arch = cfg.student_arch or detect_architecture(load_state_dict_file(init))
    else:
        raise ModelError(
            f"student '{cfg.student}' is neither a registered architecture ({', '.join(list_models())}) "
            "nor a state_dict file"
        )
    model = create_model(arch, **cfg.student_options)
    if init:
        try:
            model.load_state_dict(load_state_dict_file(init))
        except RuntimeError as exc:
            raise ModelError(f"{init}: weights do not fit {arch}: {exc}") from None
    return model, arch


class Distiller:
    """Builds everything from a config, then :meth:`run` trains (see the module docstring)."""

    def __init__(self, cfg: DistillConfig, progress: bool = True, dist: DistInfo | None = None):
        self.cfg = cfg
        self.progress = progress
        self.dist = dist or init_from_env()
        self.out = Path(cfg.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.target: TargetSpec | None = load_target(cfg.qat.target) if cfg.qat.target else None
        self.fold_bn = self.target is not None and cfg.qat.freeze_bn_step == 0
        self.data: TrainSet = build_train_set(
            cfg.data,
            cfg.exclude_pairs,
            (cfg.synthetic_identities, cfg.synthetic_images_per_identity),
            cfg.exclude_folds,
        )
        if cfg.batch_size % self.dist.world:
            raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {self.dist.world} ranks")
        float_student, self.arch = resolve_student(cfg)
        self.spec = default_preprocess(self.arch)
        self.specs = cfg.loss_specs()
        self.teacher = self._teacher_cache() if self._needs_teacher() else None
        self.objective = self._objective(float_student.embedding_size)
        self.student = self._student(float_student)
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, cfg.steps, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio),
        )
        self.ddp = self._wrap_ddp()
        self.step = 0
        self.best: float | None = None
        self.metrics: dict[str, Any] = {}
        self.seconds = 0.0  # wall time of run() calls so far in this process

    # ---- construction -------------------------------------------------------------------------

    def _needs_teacher(self) -> bool:
        from edgekd.losses import REGISTRY

        terms = [REGISTRY.resolve(s.name) for s in self.specs]
        if any(getattr(t, "needs_teacher_features", False) for t in terms):
            raise ConfigError(
                "a loss reads teacher features (e.g. cakd): that needs an online PyTorch teacher, "
                "not the embedding cache; use --method cakd with a Transformer teacher"
            )
        return any(getattr(t, "needs_teacher", True) for t in terms)

    def _teacher_cache(self) -> TeacherCache:
        """Rank 0 builds (or finds) the cache; the others wait, then open the same entry."""
        cfg = self.cfg
        teacher = load_embedder(cfg.teacher, threads=cfg.threads, preprocess=cfg.teacher_preprocess)
        path = None
        try:
            from edgekd.runtime import resolve_model_path

            path = resolve_model_path(cfg.teacher)
        except EdgeKDError:
            path = None
        build = dict(flip=cfg.flip, progress=self.progress and self.dist.is_main, teacher_file=path)
        if self.dist.is_main:
            cache = TeacherCache.open_or_build(teacher, self.data.dataset, cfg.cache_dir, **build)
        barrier(self.dist)
        if not self.dist.is_main:
            cache = TeacherCache.open_or_build(teacher, self.data.dataset, cfg.cache_dir, **build)
        return cache

    def _objective(self, student_dim: int) -> WeightedSum:
        teacher_dim = self.teacher.dim if self.teacher is not None else None
        objective = build_objective(self.specs, student_dim, self.data.num_classes, teacher_dim)
        if objective.needs_logits and self.teacher is not None:
            centres = class_centres(self.teacher[:], self.data.labels, self.data.num_classes)
            objective.set_teacher_centres(centres)
        return objective

    def _student(self, model: nn.Module) -> nn.Module:
        model = model.to(memory_format=torch.channels_last)
        if self.target is None:
            return model
        return prepare(model, self.target, example_input(batch=2), fold_bn=self.fold_bn)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups = [
            {"params": [p for p in self.student.parameters() if p.requires_grad], "lr": o.lr},
            {"params": [p for p in self.objective.parameters() if p.requires_grad], "lr": o.head_lr},
        ]
        groups = [g for g in groups if g["params"]]
        if o.name == "sgd":
            return torch.optim.SGD(groups, momentum=o.momentum, weight_decay=o.weight_decay)
        return torch.optim.AdamW(groups, weight_decay=o.weight_decay)

    def _wrap_ddp(self) -> nn.Module:
        """The module whose forward is the training loss; DDP-wrapped under torchrun."""
        module = _LossModule(self.student, self.objective)
        if not self.dist.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, broadcast_buffers=False)

    # ---- state ---------------------------------------------------------------------------------

    def _apply_freezes(self, step: int) -> None:
        """BN / observer freezing due at ``step`` (idempotent, so resume can re-apply them)."""
        q = self.cfg.qat
        bn_due = 0 <= q.freeze_bn_step <= step
        if isinstance(self.student, torch.fx.GraphModule):
            freeze(self.student, bn=bn_due, observers=0 <= q.freeze_observers_step <= step)
        elif bn_due:
            for m in self.student.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _train_mode(self) -> None:
        set_mode(self.student, train=True)
        self.objective.train()
        self._apply_freezes(self.step)

    def _payload(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "arch_kwargs": dict(self.cfg.student_options),
            "fold_bn": self.fold_bn,
            "model": self.student.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "rng": {"torch": torch.get_rng_state()},
            "config": to_dict(self.cfg),
            "target": self.target.to_dict() if self.target is not None else None,
            "best": self.best,
            "metrics": self.metrics,
        }

    def save(self, name: str) -> Path:
        return save_checkpoint(self.out / name, self._payload())

    def resume(self, path: str | Path) -> None:
        """Continue the run of checkpoint ``path`` exactly (same config and target required)."""
        ckpt = read_checkpoint(path)
        if ckpt["arch"] != self.arch:
            raise ConfigError(f"{path} holds a {ckpt['arch']} student, this run builds {self.arch}")
        theirs = ckpt.get("target") or {}
        ours = self.target.to_dict() if self.target is not None else {}
        if theirs != ours:
            raise ConfigError(
                f"{path} was trained for target {theirs.get('name', 'float')}, this run is for "
                f"{ours.get('name', 'float')}; convert it, or resume with the same --target"
            )
        self.step = int(ckpt["step"])
        self._apply_freezes(self.step)
        try:
            self.student.load_state_dict(ckpt["model"])
            self.objective.load_state_dict(ckpt["objective"])
        except RuntimeError as exc:
            raise ModelError(f"{path} does not fit this run's model/losses: {exc}") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.best, self.metrics = ckpt.get("best"), dict(ckpt.get("metrics") or {})

    # ---- loop ----------------------------------------------------------------------------------

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        idx, flips = step_indices(self.cfg.seed, step, len(self.data.dataset), self.cfg.batch_size)
        if not self.cfg.flip:
            flips[:] = False
        idx, flips = rank_slice(idx, self.dist), rank_slice(flips, self.dist)
        x = load_images(self.data.dataset, idx, flips, self.spec)
        t = None
        if self.teacher is not None:
            t = self.teacher[idx]
            if flips.any():
                t[torch.from_numpy(flips)] = self.teacher.flipped(idx[flips])
        return x, t, torch.as_tensor(self.data.labels[idx])

    def _calibrate_observers(self) -> None:
        """QAT: forward-only batches so the first update already uses scales of several batches."""
        if self.target is None:
            return
        with torch.no_grad():
            for i in range(self.cfg.qat.calib_batches):
                x, _, _ = self._batch(CALIB_STEP + i)
                self.student(x)

    def train_step(self, step: int) -> dict[str, float]:
        x, t, labels = self._batch(step)
        total, parts = self.ddp(x, t, labels, step)
        if not torch.isfinite(total):
            terms = ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items())
            raise TrainingDiverged(
                f"loss is {float(total)} at step {step} ({terms}); stopped. The last good checkpoint "
                f"is {self.out / 'last.pt'} (try a lower optim.lr or optim.grad_clip)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.optim.grad_clip > 0:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(total.detach()), **{k: float(v) for k, v in parts.items()}}

    def validate(self) -> dict[str, float]:
        """Verification accuracy of the current (fake-quant) student on the validation pairs."""
        vset = load_verification_set(self.cfg.val_pairs, self.cfg.val_folds)
        set_mode(self.student, train=False)
        try:
            embedder = TorchEmbedder(self.student, self.spec, name=self.arch)
            result = evaluate(embedder, vset, progress=False)
        finally:
            self._train_mode()
        return {
            "accuracy": float(result.metrics.accuracy),
            "accuracy_std": float(result.metrics.accuracy_std),
        }

    def run(self, max_steps: int | None = None) -> TrainResult:
        """Train from ``self.step`` to ``cfg.steps`` (or ``max_steps``: stop early, as if killed)."""
        cfg, start = self.cfg, time.perf_counter()
        end = min(cfg.steps, max_steps) if max_steps is not None else cfg.steps
        runlog = RunLog(self.out, resume_step=self.step if self.step else None) if self.dist.is_main else None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._train_mode()
        if self.step == 0:
            self._calibrate_observers()
        history: list[dict[str, float]] = []
        bar = tqdm(
            range(self.step, end),
            total=end,
            initial=self.step,
            desc="distill-qat" if self.target else "distill",
            unit="step",
            disable=not (self.progress and self.dist.is_main),
        )
        seen, t0 = 0, time.perf_counter()
        try:
            for step in bar:
                values = self.train_step(step)
                self.step = step + 1
                seen += cfg.batch_size
                values["img_s"] = seen / (time.perf_counter() - t0)
                values["lr"] = self.optimizer.param_groups[0]["lr"]
                history.append(values)
                bar.set_postfix(loss=f"{values['loss']:.3f}", img_s=f"{values['img_s']:.0f}")
                self._after_step(values, runlog)
        finally:
            if runlog is not None:
                runlog.close()
        if self.dist.is_main and (not history or self.step % cfg.checkpoint_every):
            self.save("last.pt")
        barrier(self.dist)
        self.seconds += time.perf_counter() - start
        return TrainResult(self.out, self.step, self.best, self.out / "last.pt", history, self.seconds)

    def _after_step(self, values: dict[str, float], runlog: RunLog | None) -> None:
        cfg, step = self.cfg, self.step
        if runlog is not None and (step % cfg.log_every == 0 or step == cfg.steps):
            runlog.write(step, values)
        self._apply_freezes(step)
        if cfg.val_pairs and (step % cfg.val_every == 0 or step == cfg.steps):
            metrics = self.validate()
            self.metrics = {"step": step, **metrics}
            if runlog is not None:
                runlog.write(step, metrics, prefix="val")
            if self.best is None or metrics["accuracy"] > self.best:
                self.best = metrics["accuracy"]
                if self.dist.is_main:
                    self.save("best.pt")
        if self.dist.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            self.save("last.pt")


class _LossModule(nn.Module):
    """Student + objective as one module, so DDP syncs the heads' gradients with the backbone's."""

    def __init__(self, student: nn.Module, objective: WeightedSum):
        super().__init__()
        self.student, self.objective = student, objective

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None, labels: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        emb = self.student(x)
        teacher = TeacherOut(embedding=t) if t is not None else TeacherOut(embedding=emb.detach())
        return self.objective(StudentOut(embedding=emb), teacher, labels, step)


def distill(cfg: DistillConfig, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Python API of ``edgekd distill``/``distill-qat`` (QAT when ``cfg.qat.target`` is set)."""
    trainer = Distiller(cfg, progress=progress)
    try:
        if resume:
            trainer.resume(resume)
        return trainer.run()
    finally:
        shutdown(trainer.dist)


__all__ = ["Distiller", "TrainResult", "TrainingDiverged", "distill"]
