"""Cross-architecture KD, CAKD (Zhao et al., ACM MM 2023, https://arxiv.org/abs/2306.14662).

Transformer teacher tokens ``f_T`` ``(N, N_T, d_T)`` and CNN student pixels ``f_S`` ``(N, C, H, W)``
are projected to a common width ``d`` (one linear map per side), mapped by one shared
:class:`~edgekd.losses.urfm.URFM` onto ``L`` local centres with unified receptive fields, ``h_T, h_S``
``(N, L, d)``, and passed through one shared multi-head self-attention (MHSA) layer. Then::

    L = w_mhsa · align(MHSA(h_S), MHSA(h_T))  +  w_attn · Σ_keys MSE(A_S, A_T)

``A`` ``(N, heads, L, L)`` are the MHSA attention maps; their squared error is summed over the key axis
(each row is a distribution) and averaged over batch, heads and queries, so ``w_attn`` does not have to
scale with ``L``.

``align`` (edgekd's reading of the abstract, not the paper's text; docs/methods/cakd.md):

* ``"infonce"`` (default): per centre ``l``, the student token of image ``i`` must pick out the teacher
  token of the same image among the batch's (``N × N`` cosine logits / ``temperature``, symmetric cross
  entropy, averaged over centres). Outputs that do not depend on the input score ``log N``, its maximum
  for uninformative logits, so the shared trainable mapping cannot win by making both sides constant.
* ``"vicreg"``: ``MSE(LN(·), LN(·))`` plus VICReg's variance hinge (each feature's batch std ≥ 1) and
  covariance penalty on both sides.
* ``"mse"``: ``MSE(LN(·), LN(·))`` alone, the earlier form: it falls to ~0 on *unrelated* inputs
  (``benchmarks/cakd_collapse.py``), kept for comparison.

``LN`` is a LayerNorm without parameters.

Gradients (docs/methods/cakd.md): the student side trains the student, its projection and the shared
mapping. The teacher side trains the teacher projection and, with ``adapt_teacher`` (APT), the prompts
of a :class:`~edgekd.models.apt.PromptedTeacher` through the teacher tokens; the frozen teacher itself
never gets a gradient. With ``mapping_grad="student"`` the shared URFM/MHSA weights learn only from the
student side (the teacher side sees them as constants), so the two sides cannot meet at a trivial map.

Reads ``student.features[student_feature]`` (a :class:`~edgekd.models.taps.FeatureTap` output) and
``teacher.features["tokens"]`` (+ ``"prompt_tokens"``), which only an online teacher provides.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from edgekd.errors import ConfigError
from edgekd.losses.base import LossTerm
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.urfm import URFM

TOKENS_KEY = "tokens"
PROMPT_TOKENS_KEY = "prompt_tokens"
ALIGNMENTS = ("infonce", "vicreg", "mse")


class SelfAttention(nn.Module):
    """MHSA over ``(N, L, dim)`` returning the output and the attention maps ``(N, heads, L, L)``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)).softmax(dim=-1)  # (N, h, L, L)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, d)), attn


class Mapping(nn.Module):
    """URFM then MHSA: common-width grid tokens → (MHSA output ``(N, L, dim)``, attention maps)."""

    def __init__(self, dim: int, num_centres: int, heads: int, num_buckets: int, gamma: float, unit: float):
        super().__init__()
        self.urfm = URFM(dim, num_centres, heads, num_buckets, gamma, unit)
        self.mhsa = SelfAttention(dim, heads)

    def forward(self, f: Tensor, grid: tuple[int, int], extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, _ = self.urfm(f, grid, extra)  # (N, L, dim)
        return self.mhsa(h)


class CAKD(LossTerm):
    """URFM + MHSA feature distillation from Transformer tokens to a CNN feature map.

    Options: ``student_channels`` ``C`` and ``teacher_channels`` ``d_T`` (checked at the first batch),
    ``dim`` the common width, ``num_centres`` ``L`` (a square), ``heads``, ``num_buckets``, ``gamma``
    ``γ``, ``bucket_unit`` (pixels per exact bucket), ``mhsa_weight``, ``attn_weight``,
    ``student_feature`` (key in ``student.features``), ``use_prompts`` (prompt outputs join the teacher
    side as position-free tokens), ``adapt_teacher`` (let the loss reach the prompts),
    ``mapping_grad``, ``align`` (``"infonce"``, ``"vicreg"`` or ``"mse"``), ``temperature``
    (InfoNCE), ``var_weight`` and ``cov_weight`` (VICReg).

    >>> term = CAKD(student_channels=512, teacher_channels=192, num_centres=16, gamma=1.0)
    """

    needs_teacher_features: ClassVar[bool] = True

    def __init__(
        self,
        student_channels: int = 512,
        teacher_channels: int = 192,
        dim: int = 128,
        num_centres: int = 16,
        heads: int = 4,
        num_buckets: int = 16,
        gamma: float = 1.0,
        bucket_unit: float = 8.0,
        mhsa_weight: float = 1.0,
        attn_weight: float = 1.0,
        student_feature: str = "last_map",
        use_prompts: bool = True,
        adapt_teacher: bool = True,
        mapping_grad: Literal["student", "both"] = "student",
        align: Literal["infonce", "vicreg", "mse"] = "infonce",
        temperature: float = 0.1,
        var_weight: float = 1.0,
        cov_weight: float = 0.04,
    ):
        super().__init__()
        if min(student_channels, teacher_channels) < 1:
            raise ConfigError(f"cakd: channels must be >= 1, got {student_channels} and {teacher_channels}")
        if (
            not (math.isfinite(mhsa_weight) and math.isfinite(attn_weight))
            or min(mhsa_weight, attn_weight) < 0
        ):
            raise ConfigError(f"cakd: weights must be finite and >= 0, got {mhsa_weight} and {attn_weight}")
        if mapping_grad not in ("student", "both"):
            raise ConfigError(f"cakd: mapping_grad must be 'student' or 'both', got {mapping_grad!r}")
        if align not in ALIGNMENTS:
            raise ConfigError(f"cakd: align must be one of {', '.join(ALIGNMENTS)}, got {align!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"cakd: temperature must be > 0, got {temperature}")
        if min(var_weight, cov_weight) < 0:
            raise ConfigError(f"cakd: var_weight and cov_weight must be >= 0, got {var_weight}, {cov_weight}")
        self.align, self.temperature = align, temperature
        self.var_weight, self.cov_weight = var_weight, cov_weight
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.mhsa_weight, self.attn_weight = mhsa_weight, attn_weight
        self.student_feature, self.use_prompts = student_feature, use_prompts
        self.adapt_teacher, self.mapping_grad = adapt_teacher, mapping_grad
        self.student_proj = nn.Linear(student_channels, dim, bias=False)
        self.teacher_proj = nn.Linear(teacher_channels, dim, bias=False)
        self.mapping = Mapping(dim, num_centres, heads, num_buckets, gamma, bucket_unit)

    def map_student(self, fmap: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` → (MHSA output ``(N, L, dim)``, attention ``(N, heads, L, L)``)."""
        pixels = fmap.flatten(2).transpose(1, 2).contiguous()  # (N, H·W, C), row-major like ViT tokens
        return self.mapping(self.student_proj(pixels), (fmap.shape[2], fmap.shape[3]))

    def map_teacher(self, tokens: Tensor, prompts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Tokens ``(N, N_T, d_T)`` on a square grid (+ prompts ``(N, P, d_T)``) → same as the student."""
        if not self.adapt_teacher:
            tokens, prompts = tokens.detach(), None if prompts is None else prompts.detach()
        side = math.isqrt(tokens.shape[1])
        f = self.teacher_proj(tokens.contiguous())
        extra = None if prompts is None else self.teacher_proj(prompts.contiguous())
        if self.mapping_grad == "both":
            return self.mapping(f, (side, side), extra)
        frozen = {name: p.detach() for name, p in self.mapping.named_parameters()}
        frozen.update(dict(self.mapping.named_buffers()))
        return functional_call(self.mapping, frozen, (f, (side, side), extra))

    def forward(self, student: StudentOut, teacher: TeacherOut, labels: Tensor, step: int = 0) -> Tensor:
        fmap, tokens, prompts = self.inputs(student, teacher)
        out_s, attn_s = self.map_student(fmap)
        out_t, attn_t = self.map_teacher(tokens, prompts)
        attn = (attn_s - attn_t).pow(2).sum(dim=-1).mean()
        return self.mhsa_weight * self.alignment(out_s, out_t) + self.attn_weight * attn

    def alignment(self, out_s: Tensor, out_t: Tensor) -> Tensor:
        """The ``align`` term between MHSA outputs ``(N, L, dim)`` of the two sides."""
        if self.align == "infonce":
            spread = sum(_variance_covariance(_unit(o), self.var_weight, 0.0) for o in (out_s, out_t))
            return batch_infonce(out_s, out_t, self.temperature) + spread
        mse = F.mse_loss(_unit(out_s), _unit(out_t))
        if self.align == "mse":
            return mse
        spread = sum(_variance_covariance(_unit(o), self.var_weight, self.cov_weight) for o in (out_s, out_t))
        return mse + spread

    def inputs(self, student: StudentOut, teacher: TeacherOut) -> tuple[Tensor, Tensor, Tensor | None]:
        """Checked ``(student map (N, C, H, W), teacher tokens (N, N_T, d_T), prompts or None)``."""
        if self.student_feature not in student.features:
            raise ValueError(
                f"loss 'cakd' needs student.features['{self.student_feature}'] (N, C, H, W); got "
                f"{sorted(student.features) or 'no features'}. Wrap the student in edgekd.models.taps."
                f"FeatureTap with a layer named '{self.student_feature}', or set student_feature"
            )
        if TOKENS_KEY not in teacher.features:
            raise ValueError(
                "loss 'cakd' needs teacher.features['tokens'] (N, N_T, d_T): run a PyTorch Transformer "
                "teacher online (edgekd.models.apt.PromptedTeacher(...)(x).to_teacher_out()); a teacher "
                "embedding cache holds no tokens"
            )
        fmap, tokens = student.features[self.student_feature], teacher.features[TOKENS_KEY]
        prompts = teacher.features.get(PROMPT_TOKENS_KEY) if self.use_prompts else None
        _check_shapes(fmap, tokens, prompts, self.student_channels, self.teacher_channels)
        return fmap, tokens, prompts


def _check_shapes(fmap: Tensor, tokens: Tensor, prompts: Tensor | None, c_s: int, c_t: int) -> None:
    """ValueError naming the option to change, instead of a matmul shape error deep in a Linear."""
    if fmap.ndim != 4 or fmap.shape[1] != c_s:
        raise ValueError(
            f"loss 'cakd': student feature must be (N, student_channels={c_s}, H, W), got "
            f"{tuple(fmap.shape)}; set student_channels to the tapped layer's channel count"
        )
    side = math.isqrt(tokens.shape[1]) if tokens.ndim == 3 else 0
    if tokens.ndim != 3 or tokens.shape[2] != c_t or side * side != tokens.shape[1]:
        raise ValueError(
            f"loss 'cakd': teacher tokens must be (N, N_T, teacher_channels={c_t}) with N_T a square "
            f"(patch tokens only, prompts under 'prompt_tokens'), got {tuple(tokens.shape)}"
        )
    if tokens.shape[0] != fmap.shape[0]:
        raise ValueError(
            f"loss 'cakd': batch sizes differ, student {fmap.shape[0]} vs teacher {tokens.shape[0]}"
        )
    if prompts is not None and (prompts.ndim != 3 or prompts.shape[::2] != tokens.shape[::2]):
        raise ValueError(f"loss 'cakd': prompt tokens must be (N, P, {c_t}), got {tuple(prompts.shape)}")


def batch_infonce(out_s: Tensor, out_t: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE per centre over the batch: ``(N, L, d)`` pairs, positives on the diagonal.
    ``log N`` for input-independent outputs; needs N ≥ 2 (one image has no negatives)."""
    n, centres = out_s.shape[:2]
    if n < 2:
        raise ValueError("loss 'cakd' with align='infonce' needs a batch of at least 2 images")
    s = F.normalize(out_s, dim=-1).transpose(0, 1)  # (L, N, d)
    t = F.normalize(out_t, dim=-1).transpose(0, 1)
    logits = (s @ t.transpose(1, 2) / temperature).reshape(centres * n, n)  # (L·N, N)
    target = torch.arange(n, device=out_s.device).repeat(centres)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(_by_teacher(logits, centres, n), target))


def _by_teacher(logits: Tensor, centres: int, n: int) -> Tensor:
    """The same logits with teacher tokens as queries (the transposed N × N block of every centre)."""
    return logits.reshape(centres, n, n).transpose(1, 2).reshape(centres * n, n)


def _variance_covariance(x: Tensor, var_weight: float, cov_weight: float) -> Tensor:
    """VICReg's spread terms on ``(N, L, d)``, features = (centre, channel): hinge on each feature's batch
    std below 1, and the mean squared off-diagonal covariance."""
    z = x.flatten(1)  # (N, L·d)
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    cov = (z.T @ z) / max(z.shape[0] - 1, 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return var_weight * F.relu(1 - std).mean() + cov_weight * off.pow(2).sum() / z.shape[1]


def _unit(x: Tensor) -> Tensor:
    """Parameter-free LayerNorm over the feature axis: compares directions/patterns, not scale."""
    return F.layer_norm(x, x.shape[-1:])
