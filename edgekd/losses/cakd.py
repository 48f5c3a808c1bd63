"""Cross-architecture KD, CAKD (Zhao et al., ACM MM 2023, https://arxiv.org/abs/2306.14662).

Transformer teacher tokens ``f_T`` ``(N, N_T, d_T)`` and CNN student pixels ``f_S`` ``(N, C, H, W)``
are projected to a common width ``d`` (one linear map per side), mapped by one shared
:class:`~edgekd.losses.urfm.URFM` onto ``L`` local centres with unified receptive fields, ``h_T, h_S``
``(N, L, d)``, and passed through one shared multi-head self-attention (MHSA) layer. Then::

    L = w_mhsa · MSE(LN(MHSA(h_S)), LN(MHSA(h_T)))  +  w_attn · Σ_keys MSE(A_S, A_T)

``A`` ``(N, heads, L, L)`` are the MHSA attention maps; their squared error is summed over the key axis
(each row is a distribution) and averaged over batch, heads and queries, so ``w_attn`` does not have to
scale with ``L``. ``LN`` is a LayerNorm without parameters: nothing in the loss can shrink to zero.

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

import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from edgekd.errors import ConfigError
from edgekd.losses.base import LossTerm
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.urfm import URFM

TOKENS_KEY = "tokens"
PROMPT_TOKENS_KEY = "prompt_tokens"


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
    ``mapping_grad``.

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
        mhsa = F.mse_loss(_unit(out_s), _unit(out_t))
        attn = (attn_s - attn_t).pow(2).sum(dim=-1).mean()
        return self.mhsa_weight * mhsa + self.attn_weight * attn

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


def _unit(x: Tensor) -> Tensor:
    """Parameter-free LayerNorm over the feature axis: compares directions/patterns, not scale."""
    return F.layer_norm(x, x.shape[-1:])
