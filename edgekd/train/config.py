"""``edgekd distill`` / ``distill-qat`` configuration: one frozen dataclass tree, validated on load.

Every field has a default that runs (synthetic faces, the SFace teacher, a MobileFaceNet student), so
``edgekd distill-qat --target onnx`` works without a file; ``edgekd/configs/distill_faces.yaml`` is the
real-data recipe. Command-line options and ``-o key=value`` overrides win over the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edgekd.errors import ConfigError
from edgekd.losses import LossSpec, parse_losses


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """Optimiser and schedule: linear warm-up then cosine decay to ``min_lr_ratio·lr``."""

    name: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-4  # backbone (pretrained students want a gentle rate)
    head_lr: float = 1e-2  # margin heads, projections: trained from scratch
    weight_decay: float = 5e-4
    momentum: float = 0.9  # SGD only
    warmup_steps: int = 30
    min_lr_ratio: float = 0.0
    grad_clip: float = 5.0  # max global L2 norm; 0 disables
    # First steps train only the freshly initialised heads (margin head, projections) on a frozen
    # backbone, then everything (linear probing, then fine-tuning): a random head's first gradients
    # otherwise distort the pretrained features (benchmarks/results/recipes.md). The backbone's
    # warm-up and cosine decay start when it joins.
    head_only_steps: int = 0

    def __post_init__(self) -> None:
        if self.head_only_steps < 0:
            raise ConfigError(f"optim.head_only_steps must be >= 0, got {self.head_only_steps}")
        if self.lr <= 0 or self.head_lr <= 0:
            raise ConfigError(f"optim.lr and optim.head_lr must be > 0, got {self.lr}, {self.head_lr}")
        if self.warmup_steps < 0 or self.grad_clip < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("optim.warmup_steps, optim.grad_clip >= 0 and optim.min_lr_ratio in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class QATConfig:
    """Quantization-aware training: the target whose arithmetic is mirrored, and when to freeze.

    ``profile``: the device the artifact ships to; checked against the target before the first step.
    ``freeze_bn_step``: from this step BN uses its running statistics (a small batch's statistics are
    noisy, and a pretrained student's are good); ``freeze_observers_step``: from this step scales and
    zero points stop moving so the weights settle on the final grid. Negative = never.
    """

    target: str | None = None  # name (onnx|openvino|tflite) or a spec file; None = float training
    # device profile the artifact ships to (rpi4, x86, ...): its ISA must be one the target's integer
    # arithmetic is exact on (edgekd.isa), else the run is refused before training
    profile: str | None = None
    freeze_bn_step: int = 0
    freeze_observers_step: int = -1
    calib_batches: int = 4  # forward-only batches that set the initial scales before the first update


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Everything one distillation run needs; stored in every checkpoint."""

    student: str = "mobilefacenet_ms1m"  # registered architecture name, or a state_dict file
    student_arch: str | None = None  # architecture of a state_dict file when it can't be detected
    student_options: dict[str, Any] = field(default_factory=dict)  # e.g. {width: 0.5, embedding_size: 256}
    student_init: str | None = None  # weights to start from (state_dict), e.g. the pretrained student
    teacher: str = "sface"  # named model or file (ONNX or PyTorch); cached unless a loss needs features
    teacher_preprocess: Literal["raw255", "arcface", "imagenet"] | None = None  # when the file doesn't say
    # Online (prompted) Transformer teacher, used when a loss reads teacher features (cakd):
    teacher_arch: str | None = None  # ViT builder of a teacher .pt (default: detected from its keys)
    teacher_options: dict[str, Any] = field(default_factory=dict)  # its builder options, e.g. patch_size
    apt_prompts: int = 4  # t: APT prompt tokens per teacher block
    apt_anchor_weight: float = 1.0  # teacher's own loss: 1 - cos(prompted, unprompted embedding); 0 = off
    student_taps: dict[str, str] | None = None  # {feature name: module path}; None = default_taps(arch)
    # identity-folder roots (one folder per person; several are concatenated), or "synthetic"
    data: tuple[str, ...] = ("synthetic",)
    exclude_pairs: str | None = None  # pairs whose identities are held out of training (no leakage)
    exclude_folds: str | None = None  # folds of exclude_pairs, e.g. "6-10" (default: all)
    # files of identity names held out too (every word of a line), e.g. cfp112/names.txt
    exclude_names: tuple[str, ...] = ()
    val_pairs: str | None = None  # verification set for periodic evaluation ("synthetic", LFW root)
    val_folds: str | None = None  # e.g. "6-10"
    val_every: int = 100
    losses: tuple[Any, ...] = ("cosface", {"name": "l2", "weight": 50.0, "params": {"projection": True}})
    steps: int = 300
    batch_size: int = 64
    flip: bool = True
    # Pose views (edgekd.data.augment): with probability pose_prob a sample is shown turned about the
    # vertical axis, as one of pose_views fixed views per image (yaw up to pose_max_yaw degrees) whose
    # teacher embeddings the cache holds too, so the student learns what the teacher makes of a turned
    # face. 0 = off (frontal training sets never show a profile; CFP-FP pairs frontal with profile).
    pose_views: int = 0
    pose_prob: float = 0.5
    pose_max_yaw: float = 45.0
    seed: int = 0
    device: str = "auto"  # cpu, cuda, cuda:N, auto (this rank's GPU when CUDA is available)
    bf16: bool = True  # bf16 autocast for float training on a GPU (QAT always runs in fp32)
    workers: int = 0  # DataLoader processes decoding the next steps' batches (0: decode in the loop)
    prefetch: int = 2  # steps each worker decodes ahead
    optim: OptimConfig = field(default_factory=OptimConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    out: str = "runs/distill"
    cache_dir: str = ".cache/teacher"
    # teacher-cache storage: float16 halves disk and page cache for million-image sets (unit rows lose
    # < 1e-3 per element)
    cache_dtype: Literal["float32", "float16"] = "float32"
    log_every: int = 10
    checkpoint_every: int = 100
    threads: int | None = None
    synthetic_identities: int = 64  # size of the synthetic training set (data: synthetic)
    synthetic_images_per_identity: int = 4

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "val_every", "log_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.workers < 0 or self.prefetch < 1:
            raise ConfigError(f"workers must be >= 0 and prefetch >= 1, got {self.workers}, {self.prefetch}")
        if self.pose_views < 0 or not 0 <= self.pose_prob <= 1 or not 0 < self.pose_max_yaw < 90:
            raise ConfigError(
                "pose_views must be >= 0, pose_prob in [0, 1] and pose_max_yaw in (0, 90) degrees, got "
                f"{self.pose_views}, {self.pose_prob}, {self.pose_max_yaw}"
            )
        if self.apt_prompts < 1:
            raise ConfigError(f"apt_prompts must be >= 1, got {self.apt_prompts}")
        if not self.apt_anchor_weight >= 0:
            raise ConfigError(f"apt_anchor_weight must be >= 0, got {self.apt_anchor_weight}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be >= 2 (batch norm and in-batch pairs need two images)")
        if self.optim.head_only_steps >= self.steps:
            raise ConfigError(
                f"optim.head_only_steps ({self.optim.head_only_steps}) must be below steps ({self.steps}): "
                "the backbone would never train"
            )
        self.loss_specs()  # validate names and options now, not at step 0

    def loss_specs(self) -> tuple[LossSpec, ...]:
        return parse_losses(list(self.losses), source="config")
