"""``edgekd distill`` / ``distill-qat``: KD losses + (optionally) PT2E QAT, checkpointed and resumable.

One step: draw the step's global batch (a pure function of seed and step), take this rank's slice, read
the teacher's embeddings from the cache (the mirrored image's when flipped, the view's when turned),
run the student (eager, or the prepared QAT graph whose fake quantization mirrors the target's integer
arithmetic), sum the configured loss terms, clip, step. Every ``val_every`` steps the (fake-quant)
student is evaluated on the validation pairs; ``last.pt`` and ``best.pt`` are written atomically. A
non-finite loss stops the run with the step and the terms, and leaves the last good checkpoint in place.

Online teacher (a loss term with ``needs_teacher_features``, e.g. ``cakd``): a cache holds embeddings
only, so the teacher (a frozen ViT with learnable APT prompts, :class:`~edgekd.models.apt.PromptedTeacher`)
runs on every batch instead; the student is wrapped in a :class:`~edgekd.models.taps.FeatureTap` (before
QAT preparation, so the tapped map is an output of the prepared graph) and the prompts are optimised with
the heads. The teacher is never prepared for QAT and its own weights never change.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgekd.config import to_dict
from edgekd.data import load_verification_set
from edgekd.data.augment import PoseView
from edgekd.data.preprocess import PreprocessSpec
from edgekd.device import resolve_device
from edgekd.distributed import DistInfo, barrier, init_from_env, shutdown
from edgekd.errors import ConfigError, EdgeKDError, ModelError
from edgekd.eval.runner import evaluate
from edgekd.losses import LossSpec, build_objective
from edgekd.losses.objective import WeightedSum
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.teacher_logits import class_centres
from edgekd.models import create_model, default_preprocess, detect_architecture, load_state_dict_file
from edgekd.models.apt import PromptedTeacher, make_prompted_teacher
from edgekd.models.taps import EmbeddingOnly, FeatureTap, default_taps
from edgekd.models.vit import PREPROCESS_PRESET as VIT_PREPROCESS
from edgekd.quant import example_input, freeze, load_target, prepare, set_mode
from edgekd.quant.spec import TargetSpec
from edgekd.runtime import load_embedder
from edgekd.runtime.base import Embedder
from edgekd.runtime.ort_backend import OrtEmbedder
from edgekd.runtime.torch_backend import TorchEmbedder
from edgekd.train.batches import TrainSet, build_train_set
from edgekd.train.checkpoint import read_checkpoint, save_checkpoint
from edgekd.train.config import DistillConfig
from edgekd.train.logs import RunLog
from edgekd.train.pipeline import Decoded, StepBatches, decoded_steps
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


def resolve_online_teacher(cfg: DistillConfig) -> PromptedTeacher:
    """The prompted ViT teacher of a run whose losses read teacher features.

    ``cfg.teacher``: a ViTFace ``.pt`` state_dict (``teacher_arch``/``teacher_options`` when its keys do not
    identify a default-option ViT) or a registered ViT name (random weights: for tests). Named ONNX models
    (e.g. ``sface``) are resolved to their file first so that they get make_prompted_teacher's "ONNX
    teachers cannot be prompted" error rather than "unknown model".
    """
    from edgekd.models import list_models
    from edgekd.runtime import resolve_model_path

    ref: str | Path = cfg.teacher
    suffix = Path(cfg.teacher).suffix.lower()
    if cfg.teacher not in list_models() and suffix not in (".onnx", ".pt", ".pth"):
        ref = resolve_model_path(cfg.teacher)
    return make_prompted_teacher(
        ref, arch=cfg.teacher_arch, num_prompts=cfg.apt_prompts, options=cfg.teacher_options
    )


def fill_feature_channels(
    specs: tuple[LossSpec, ...], teacher_channels: int, student_maps: dict[str, torch.Tensor]
) -> tuple[LossSpec, ...]:
    """Feature terms' ``teacher_channels``/``student_channels`` from the models, where the config left them
    out: the recipe ``--method cakd`` then works for any ViT width and tapped layer without ``-o`` options.

    ``student_channels`` comes from ``student_maps[params.get("student_feature", "last_map")]``.
    """
    from edgekd.losses import REGISTRY

    out = []
    for spec in specs:
        term = REGISTRY.resolve(spec.name)
        if getattr(term, "needs_teacher_features", False):
            options = inspect.signature(term).parameters
            params = dict(spec.params)
            if "teacher_channels" in options:
                params.setdefault("teacher_channels", teacher_channels)
            feature = student_maps.get(str(params.get("student_feature", "last_map")))
            if "student_channels" in options and feature is not None:
                params.setdefault("student_channels", int(feature.shape[1]))
            spec = LossSpec(spec.name, spec.weight, params)
        out.append(spec)
    return tuple(out)


class Distiller:
    """Builds everything from a config, then :meth:`run` trains (see the module docstring)."""

    def __init__(self, cfg: DistillConfig, progress: bool = True, dist: DistInfo | None = None):
        self.cfg = cfg
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.dist = dist or init_from_env(self.device)
        self.out = Path(cfg.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.target: TargetSpec | None = load_target(cfg.qat.target) if cfg.qat.target else None
        if self.target is not None and cfg.qat.profile:
            from edgekd.bench.profiles import load_profile

            self.target.check_deployment(load_profile(cfg.qat.profile).cpu.int8_isa, cfg.qat.profile)
        self.fold_bn = self.target is not None and cfg.qat.freeze_bn_step == 0
        self.data: TrainSet = build_train_set(
            cfg.data,
            cfg.exclude_pairs,
            (cfg.synthetic_identities, cfg.synthetic_images_per_identity),
            cfg.exclude_folds,
            cfg.exclude_names,
        )
        if cfg.batch_size % self.dist.world:
            raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {self.dist.world} ranks")
        float_student, self.arch = resolve_student(cfg)
        self.spec = default_preprocess(self.arch)
        self.specs = cfg.loss_specs()
        self.online: PromptedTeacher | None = None  # the prompted teacher, when a loss reads its features
        self.teacher: TeacherCache | None = None
        self.pose_caches: list[TeacherCache] = []  # the teacher's embeddings of every pose view
        self.taps: dict[str, str] | None = None
        if self._needs_teacher_features():
            self.online = resolve_online_teacher(cfg).to(self.device)
            self.teacher_spec = PreprocessSpec.preset(cfg.teacher_preprocess or VIT_PREPROCESS)
            self.taps = dict(cfg.student_taps or default_taps(self.arch))
            float_student = FeatureTap(float_student, self.taps)
            self.specs = fill_feature_channels(
                self.specs, self.online.teacher.embed_dim, _probe(float_student)
            )
        elif self._needs_teacher():
            self.teacher, *self.pose_caches = self._teacher_caches()
        self.objective = self._objective(float_student.embedding_size)
        self.student = self._student(float_student)
        self.optimizer = self._optimizer()
        roles = {g["role"] for g in self.optimizer.param_groups}
        if cfg.optim.head_only_steps and "heads" not in roles:
            raise ConfigError(
                f"optim.head_only_steps={cfg.optim.head_only_steps}, but these losses have no head or "
                "projection to train on their own (nothing would learn in those steps); set it to 0"
            )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, [self._schedule(g["role"]) for g in self.optimizer.param_groups]
        )
        self.ddp = self._wrap_ddp()
        pose = (cfg.pose_views, cfg.pose_prob, cfg.pose_max_yaw)
        self.batches = StepBatches(self.data.dataset, cfg.seed, cfg.batch_size, cfg.flip, self.dist, pose)
        self.step = 0
        self.best: float | None = None
        self.metrics: dict[str, Any] = {}
        self.seconds = 0.0  # wall time of run() calls so far in this process

    # ---- construction -------------------------------------------------------------------------

    def _terms(self) -> list[type]:
        from edgekd.losses import REGISTRY

        return [REGISTRY.resolve(s.name) for s in self.specs]

    def _needs_teacher_features(self) -> bool:
        """A term reads teacher tokens (cakd): the teacher must run online, a cache holds embeddings only."""
        return any(getattr(t, "needs_teacher_features", False) for t in self._terms())

    def _needs_teacher(self) -> bool:
        return any(getattr(t, "needs_teacher", True) for t in self._terms())

    def _teacher_embedder(self) -> Embedder:
        """The teacher that fills the cache, on the training GPU when there is one: a PyTorch teacher
        moves there, an ONNX teacher uses ONNX Runtime's CUDA provider when installed, else the CPU."""
        cfg = self.cfg
        teacher = load_embedder(cfg.teacher, threads=cfg.threads, preprocess=cfg.teacher_preprocess)
        if self.device.type != "cuda":
            return teacher
        if isinstance(teacher, TorchEmbedder):
            return teacher.to(self.device)
        if isinstance(teacher, OrtEmbedder) and teacher.to_cuda(self.device.index or 0):
            return teacher
        log.info("%s runs on the CPU (no GPU provider for it here, e.g. onnxruntime-gpu)", teacher.name)
        return teacher

    def _teacher_caches(self) -> list[TeacherCache]:
        """The caches of the training set and of each of its pose views, found or filled by all ranks
        together; the teacher is loaded (and its file hashed for the key) once for all of them."""
        cfg = self.cfg
        teacher = self._teacher_embedder()
        try:
            from edgekd.runtime import resolve_model_path

            path = resolve_model_path(cfg.teacher)
        except EdgeKDError:
            path = None
        views = [PoseView(self.data.dataset, v, cfg.pose_max_yaw) for v in range(cfg.pose_views)]
        return [
            TeacherCache.open_or_build(
                teacher,
                dataset,
                cfg.cache_dir,
                flip=cfg.flip and not isinstance(dataset, PoseView),  # a view's mirror is never drawn
                progress=self.progress,
                teacher_file=path,
                dtype=cfg.cache_dtype,
                dist=self.dist,
            )
            for dataset in [self.data.dataset, *views]
        ]

    def _objective(self, student_dim: int) -> WeightedSum:
        teacher_dim = self.teacher.dim if self.teacher is not None else None
        if self.online is not None:
            teacher_dim = self.online.embedding_size
        objective = build_objective(self.specs, student_dim, self.data.num_classes, teacher_dim)
        if objective.needs_logits and self.online is not None:
            raise ConfigError(
                "losses reading teacher logits (kd, gkd) need class centres of every training image's "
                "teacher embedding, which an online (prompted) teacher does not provide; combine cakd with "
                "instance-level terms (l2, iled) instead"
            )
        objective = objective.to(self.device)  # heads, projections, memory banks
        if objective.needs_logits and self.teacher is not None:
            centres = class_centres(self.teacher[:], self.data.labels, self.data.num_classes)
            objective.set_teacher_centres(centres.to(self.device))
        return objective

    def _student(self, model: nn.Module) -> nn.Module:
        """channels_last on the device; QAT: prepared on the CPU (export), then moved."""
        model = model.to(memory_format=torch.channels_last)
        if self.target is not None:
            model = prepare(model, self.target, example_input(batch=2), fold_bn=self.fold_bn)
        return model.to(self.device)

    def _optimizer(self) -> torch.optim.Optimizer:
        """Backbone at ``lr``; heads, projections, URFM and the APT prompts (all trained from scratch) at
        ``head_lr``. The frozen teacher's weights are in no group, so not even weight decay touches them."""
        o = self.cfg.optim
        prompts = list(self.online.trainable_parameters()) if self.online is not None else []
        groups = [
            {
                "params": [p for p in self.student.parameters() if p.requires_grad],
                "lr": o.lr,
                "role": "backbone",
            },
            {
                "params": [p for p in self.objective.parameters() if p.requires_grad] + prompts,
                "lr": o.head_lr,
                "role": "heads",
            },
        ]
        groups = [g for g in groups if g["params"]]
        if o.name == "sgd":
            return torch.optim.SGD(groups, momentum=o.momentum, weight_decay=o.weight_decay)
        return torch.optim.AdamW(groups, weight_decay=o.weight_decay)

    def _schedule(self, role: str) -> Any:
        """Per-group LR factor: heads warm up from step 0; the backbone from ``head_only_steps`` on."""
        o, steps = self.cfg.optim, self.cfg.steps
        h = 0 if role == "heads" else o.head_only_steps
        return lambda s: 0.0 if s < h else lr_factor(s - h, steps - h, o.warmup_steps, o.min_lr_ratio)

    def _autocast(self) -> Any:
        """bf16 autocast for float training on a GPU (``bf16: true``). QAT stays fp32: its fake quantizers
        round activations to the int8 grid of scales learnt in fp32, and bf16's 8-bit mantissa would move
        values across rounding boundaries the deployed integer kernels never see."""
        enabled = self.cfg.bf16 and self.device.type == "cuda" and self.target is None
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _backbone_frozen(self, step: int) -> bool:
        """Head-only step: the student runs without autograd (no backbone gradients to compute). Under DDP
        every parameter must get a gradient each step, so there the zero LR alone keeps it still."""
        return step < self.cfg.optim.head_only_steps and not self.dist.enabled

    def _wrap_ddp(self) -> nn.Module:
        """The module whose forward is the training loss; DDP-wrapped under torchrun."""
        module = _LossModule(self.student, self.objective, self.online, self.cfg.apt_anchor_weight)
        if not self.dist.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

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
        if self.online is not None:
            self.online.train()  # the prompts' module; the frozen ViT stays in eval mode
        self._apply_freezes(self.step)

    def _payload(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "arch_kwargs": dict(self.cfg.student_options),
            "taps": self.taps,  # the model below is a FeatureTap(student, taps): load_student rebuilds it
            "apt": {"prompts": self.online.prompts.detach().clone()} if self.online is not None else None,
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
            if self.online is not None:
                if not ckpt.get("apt"):
                    raise RuntimeError("it has no APT prompts (it was not trained with an online teacher)")
                with torch.no_grad():
                    self.online.prompts.copy_(ckpt["apt"]["prompts"])
        except RuntimeError as exc:
            raise ModelError(f"{path} does not fit this run's model/losses: {exc}") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.best, self.metrics = ckpt.get("best"), dict(ckpt.get("metrics") or {})

    # ---- loop ----------------------------------------------------------------------------------

    def _batch(self, step: int) -> Batch:
        return self._assemble(self.batches[step])

    def _assemble(self, d: Decoded) -> Batch:
        """A decoded step → model inputs, cached teacher embeddings (the mirror's where flipped, the
        view's where turned), labels, on the training device."""
        dev = self.device
        x = _model_input(self.spec, d.images).to(dev, non_blocking=True)
        t = x_teacher = None
        if self.teacher is not None:
            t = self.teacher[d.indices]
            if d.flips.any():
                t[torch.from_numpy(d.flips)] = self.teacher.flipped(d.indices[d.flips])
            for view in np.unique(d.views[d.views >= 0]):
                rows = d.views == view
                t[torch.from_numpy(rows)] = self.pose_caches[int(view)][d.indices[rows]]
            t = t.to(dev, non_blocking=True)
        if self.online is not None:  # the same decoded (and mirrored) images, in the ViT's normalisation
            x_teacher = _model_input(self.teacher_spec, d.images).to(dev, non_blocking=True)
        labels = torch.as_tensor(self.data.labels[d.indices]).to(dev, non_blocking=True)
        return Batch(x, t, labels, x_teacher)

    def _calibrate_observers(self) -> None:
        """QAT: forward-only batches so the first update already uses scales of several batches."""
        if self.target is None:
            return
        with torch.no_grad():
            for i in range(self.cfg.qat.calib_batches):
                self.student(self._batch(CALIB_STEP + i).x)

    def train_step(self, step: int, decoded: Decoded | None = None) -> dict[str, float]:
        b = self._assemble(decoded) if decoded is not None else self._batch(step)
        with self._autocast():
            total, parts = self.ddp(
                b.x, b.teacher, b.labels, step, b.x_teacher, frozen=self._backbone_frozen(step)
            )
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
            model = EmbeddingOnly(self.student) if self.taps is not None else self.student
            embedder = TorchEmbedder(model, self.spec, name=self.arch, device=self.device)
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
        steps = decoded_steps(self.batches, self.step, end, cfg.workers, cfg.prefetch)
        try:
            for step, decoded in zip(bar, steps, strict=True):
                values = self.train_step(step, decoded)
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


@dataclass(frozen=True)
class Batch:
    """One rank's slice of a step: student input, cached teacher embeddings (or None), labels, and the
    online teacher's input (the same images in its normalisation, or None)."""

    x: torch.Tensor
    teacher: torch.Tensor | None
    labels: torch.Tensor
    x_teacher: torch.Tensor | None = None


def _model_input(spec: PreprocessSpec, images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(spec.apply(images)).contiguous(memory_format=torch.channels_last)


def _probe(tapped: FeatureTap) -> dict[str, torch.Tensor]:
    """The tapped maps of one zero batch (eval mode, no grad: BN statistics are not touched)."""
    was = tapped.training
    tapped.eval()
    try:
        with torch.no_grad():
            _, maps = tapped(example_input(batch=2))
    finally:
        tapped.train(was)
    return maps


class _LossModule(nn.Module):
    """Student + objective (+ online teacher) as one module, so DDP syncs the heads' and the prompts'
    gradients with the backbone's."""

    def __init__(
        self,
        student: nn.Module,
        objective: WeightedSum,
        online: PromptedTeacher | None = None,
        anchor_weight: float = 0.0,
    ):
        super().__init__()
        self.student, self.objective, self.online = student, objective, online
        self.anchor_weight = anchor_weight

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None,
        labels: torch.Tensor,
        step: int,
        x_teacher: torch.Tensor | None = None,
        frozen: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            out = self.student(x)
        if self.online is None:
            emb = out
            teacher = TeacherOut(embedding=t) if t is not None else TeacherOut(embedding=emb.detach())
            return self.objective(StudentOut(embedding=emb), teacher, labels, step)
        if x_teacher is None:
            raise ValueError("an online teacher needs its own input batch (x_teacher)")
        emb, maps = out  # a FeatureTap (or its prepared graph): (embedding, {name: map})
        out = self.online(x_teacher)
        total, parts = self.objective(
            StudentOut(embedding=emb, features=dict(maps)), out.to_teacher_out(), labels, step
        )
        if self.anchor_weight > 0:
            anchor = self._anchor(out.embedding, x_teacher)
            total = total + self.anchor_weight * anchor
            parts = {**parts, "apt_anchor": anchor.detach()}
        return total, parts

    def _anchor(self, prompted: torch.Tensor, x_teacher: torch.Tensor) -> torch.Tensor:
        """The teacher's own loss for APT: ``1 − cos`` between the prompted and the unprompted embedding.

        The trainer does not know the objective the teacher was trained with (the benchmark's ViT
        regressed SFace embeddings); keeping the prompted embedding on the frozen teacher's own embedding
        keeps exactly the discriminative power the teacher had, whatever made it, while the prompts are
        free to reshape the tokens the distillation loss reads.
        """
        with torch.no_grad():
            reference = self.online.teacher(x_teacher)
        return (1 - F.cosine_similarity(prompted, reference, dim=1)).mean()


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
