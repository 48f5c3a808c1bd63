"""Adaptable Prompting Teacher, APT (Zhao et al., ACM MM 2023, https://arxiv.org/abs/2306.14662).

A pretrained Transformer teacher was trained to recognise faces, not to teach a CNN. APT keeps every
teacher weight frozen and learns only a few prompt tokens per block (VPT-deep style: block ``k`` reads
``[t_k; patch tokens]``, the prompt outputs are replaced by ``t_{k+1}`` before the next block). Trained
with the distillation loss the prompts bend the teacher's tokens towards what the student can follow;
trained with the teacher's own face loss at the same time they keep it discriminative. Because the
backbone is frozen, dropping the prompts gives back the original teacher exactly.

Only ViT teachers are supported (:class:`~edgekd.models.vit.ViTFace`); the paper's Swin variant (fresh
prompts per stage, ignored by patch merging) is not implemented. ONNX teachers cannot be prompted: the
prompts must enter every block and receive gradients, which needs the PyTorch module.

>>> import torch
>>> from edgekd.models.vit import vit_face_tiny
>>> teacher = PromptedTeacher(vit_face_tiny(), num_prompts=4)
>>> out = teacher(torch.zeros(2, 3, 112, 112))
>>> out.embedding.shape, out.tokens.shape, out.prompt_tokens.shape
(torch.Size([2, 512]), torch.Size([2, 196, 192]), torch.Size([2, 4, 192]))
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgekd.errors import ModelError
from edgekd.losses.cakd import PROMPT_TOKENS_KEY, TOKENS_KEY
from edgekd.losses.outputs import TeacherOut
from edgekd.models.vit import ViTFace


@dataclass(frozen=True)
class PromptedOutput:
    """``embedding`` ``(N, E)``; ``tokens`` ``(N, T, D)`` final patch tokens on the ``√T × √T`` face grid;
    ``prompt_tokens`` ``(N, P, D)`` the last block's prompt outputs (no position on the face)."""

    embedding: Tensor
    tokens: Tensor
    prompt_tokens: Tensor

    def to_teacher_out(self) -> TeacherOut:
        """The record loss terms read: tokens under ``"tokens"`` and ``"prompt_tokens"``."""
        features = {TOKENS_KEY: self.tokens, PROMPT_TOKENS_KEY: self.prompt_tokens}
        return TeacherOut(embedding=self.embedding, features=features)


class PromptedTeacher(nn.Module):
    """A frozen :class:`ViTFace` plus ``num_prompts`` learnable tokens per block.

    The wrapped teacher is frozen (``requires_grad=False``) and stays in eval mode whatever
    ``.train()`` says, so its BatchNorm statistics (and any dropout) never change: only
    :meth:`trainable_parameters` (the prompts) can move. ``init_std``: prompts start as small
    truncated-normal tokens, so the prompted teacher starts close to the original one.
    """

    def __init__(self, teacher: ViTFace, num_prompts: int = 4, init_std: float = 0.02):
        super().__init__()
        if not isinstance(teacher, ViTFace):
            raise ModelError(
                f"APT prompts a ViTFace teacher, got {type(teacher).__name__}; a CNN has no tokens to "
                "prompt (use a CNN teacher with the instance-level losses instead)"
            )
        if num_prompts < 1:
            raise ModelError(f"num_prompts must be >= 1, got {num_prompts}")
        self.teacher = teacher
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.embedding_size = teacher.embedding_size
        self.num_prompts = num_prompts
        depth, dim = len(teacher.blocks), teacher.embed_dim
        self.prompts = nn.Parameter(torch.empty(depth, num_prompts, dim))  # (depth, P, D)
        nn.init.trunc_normal_(self.prompts, std=init_std)

    def train(self, mode: bool = True) -> PromptedTeacher:
        """Switch the module's own mode but keep the frozen teacher in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The prompts: the only parameters an optimiser should see."""
        yield self.prompts

    def forward(self, x: Tensor) -> PromptedOutput:
        """``(N, 3, 112, 112)`` teacher-normalised images → embedding, patch tokens, prompt outputs."""
        tokens, prompt_tokens = self.teacher.forward_deep_prompted(x, self.prompts)
        return PromptedOutput(self.teacher.forward_head(tokens), tokens, prompt_tokens)


def make_prompted_teacher(
    ref: ViTFace | str | os.PathLike[str],
    *,
    arch: str | None = None,
    num_prompts: int = 4,
    init_std: float = 0.02,
    options: Mapping[str, Any] | None = None,
) -> PromptedTeacher:
    """A :class:`PromptedTeacher` from a ViTFace module, a registered ViT name or a ``.pt`` state_dict.

    ``arch`` names the ViT builder for a ``.pt`` file (default: detected from its keys, which only works
    for default options); ``options`` are that builder's keyword options (e.g. ``patch_size``,
    ``embedding_size``), needed whenever the teacher was built with non-default ones, because a
    state_dict does not record them. ONNX teachers raise ModelError: they cannot be prompted.

    >>> make_prompted_teacher("vit_face_tiny", num_prompts=2).prompts.shape
    torch.Size([4, 2, 192])
    """
    from edgekd.models import create_model, detect_architecture, load_state_dict_file

    if isinstance(ref, nn.Module):
        return PromptedTeacher(ref, num_prompts, init_std)  # type: ignore[arg-type]
    path = Path(ref)
    if path.suffix.lower() == ".onnx":
        raise ModelError(
            f"{path}: ONNX teachers cannot be prompted: APT needs a PyTorch Transformer teacher (prompt "
            "tokens enter every block and are trained by backpropagation). Give a ViTFace .pt state_dict "
            "or a registered name such as 'vit_face_tiny', or use an instance-level loss (l2, iled) with "
            "the ONNX teacher"
        )
    if path.suffix.lower() in (".pt", ".pth"):
        state = load_state_dict_file(path)
        arch = arch or detect_architecture(state)
        model = create_model(arch, **dict(options or {}))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(
                f"{path} does not fit '{arch}' with options {dict(options or {})}: {exc} (set the "
                "teacher's architecture and builder options, e.g. teacher_arch and teacher_options)"
            ) from None
    else:
        model = create_model(str(ref), **dict(options or {}))
    if not isinstance(model, ViTFace):
        raise ModelError(
            f"'{ref}' is a {type(model).__name__}, not a Transformer: APT prompts ViT teachers only "
            "(vit_face_tiny, vit_face_small)"
        )
    return PromptedTeacher(model, num_prompts, init_std)
