"""A small Vision Transformer for 112x112 aligned faces (Dosovitskiy et al. 2020, pre-norm blocks).

Here mostly as a *teacher or student of another architecture family* for cross-architecture distillation,
which needs the token sequence, not only the embedding: :meth:`ViTFace.forward_features` returns the
tokens ``(N, P + T, D)``, and both it and :meth:`ViTFace.forward` accept optional **prompt tokens**
``(N, P, D)``. Prompts are prepended after the position embedding (they get none), pass through every
block so they can attend to and steer the patch tokens, and are dropped before pooling, so the
embedding head always sees the ``T`` patch tokens. :meth:`ViTFace.forward_deep_prompted` is the deep
variant used by APT (:mod:`edgekd.models.apt`): fresh prompts enter every block.

>>> import torch
>>> vit = vit_face_tiny()
>>> vit.forward_features(torch.zeros(2, 3, 112, 112)).shape  # patch 8: 14 x 14 tokens
torch.Size([2, 196, 192])
>>> vit(torch.zeros(2, 3, 112, 112), prompts=torch.zeros(2, 4, 192)).shape
torch.Size([2, 512])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.errors import ModelError

PREPROCESS_PRESET = "arcface"

POOLS = ("mean", "flatten")


class Attention(nn.Module):
    """Multi-head self-attention on ``(N, T, D)``, via ``scaled_dot_product_attention`` (fused kernels)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (N, heads, T, D / heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, T, D / heads)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))  # (N, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTFace(nn.Module):
    """Patch embedding → position embedding → pre-norm blocks → LayerNorm → pool → Linear → BatchNorm1d.

    ``patch_size`` 8 gives 14x14 = 196 tokens on 112x112; 9 gives 12x12 = 144 (the last 4 pixel rows and
    columns are dropped, as a strided conv does). ``pool="mean"`` averages the patch tokens;
    ``pool="flatten"`` feeds all of them to the linear layer (T*D inputs, keeps spatial layout, heavier).
    Output ``(N, embedding_size)`` unnormalised embeddings.
    """

    def __init__(
        self,
        img_size: int = 112,
        patch_size: int = 8,
        dim: int = 256,
        depth: int = 6,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        embedding_size: int = 512,
        pool: str = "mean",
    ):
        super().__init__()
        _check_config(img_size, patch_size, dim, depth, heads, embedding_size, pool)
        self.embedding_size = embedding_size
        self.embed_dim = dim
        self.pool = pool
        self.num_tokens = (img_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)  # (N, D, H/p, W/p)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        pooled = dim * self.num_tokens if pool == "flatten" else dim
        self.fc = nn.Linear(pooled, embedding_size, bias=False)
        self.features = nn.BatchNorm1d(embedding_size)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward_features(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, 3, H, W)``, optional prompts ``(N or 1, P, D)`` → tokens ``(N, P + T, D)``, prompts first."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (N, T, D)
        if prompts is not None:
            tokens = torch.cat([self._check_prompts(prompts, tokens), tokens], dim=1)  # (N, P + T, D)
        return self.norm(self.blocks(tokens))

    def forward_deep_prompted(
        self, x: torch.Tensor, prompts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deep prompting (VPT-deep, as APT): fresh prompts ``(depth, P, D)`` enter *every* block.

        Block ``k`` sees ``[prompts[k]; patch tokens]``; its prompt outputs are dropped and replaced by
        ``prompts[k + 1]``, so each block gets its own learnable steering tokens while the patch tokens flow
        through unchanged in number. Returns the normed ``(N, T, D)`` patch tokens and the normed
        ``(N, P, D)`` prompt outputs of the last block (the paper distils both).
        """
        depth, d = len(self.blocks), self.embed_dim
        if prompts.ndim != 3 or prompts.shape[0] != depth or prompts.shape[-1] != d:
            raise ModelError(f"deep prompts must be (depth={depth}, P, D={d}), got {tuple(prompts.shape)}")
        n, p = x.shape[0], prompts.shape[1]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (N, T, D)
        out = tokens
        for block, block_prompts in zip(self.blocks, prompts, strict=True):
            out = block(torch.cat([block_prompts.expand(n, -1, -1), tokens], dim=1))  # (N, P + T, D)
            tokens = out[:, p:]
        out = self.norm(out)
        return out[:, p:], out[:, :p]

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``(N, T, D)`` (prompts already dropped) → embedding ``(N, embedding_size)``."""
        pooled = tokens.flatten(1) if self.pool == "flatten" else tokens.mean(dim=1)  # (N, T*D) or (N, D)
        return self.features(self.fc(pooled))

    def forward(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.forward_features(x, prompts)
        return self.forward_head(tokens[:, tokens.shape[1] - self.num_tokens :])  # drop the P prompts

    def _check_prompts(self, prompts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Prompts ``(N, P, D)`` or ``(1, P, D)`` shared by the batch → ``(N, P, D)``."""
        n, _, d = tokens.shape
        if prompts.ndim != 3 or prompts.shape[-1] != d or prompts.shape[0] not in (1, n):
            raise ModelError(f"prompts must be (N={n} or 1, P, D={d}), got {tuple(prompts.shape)}")
        return prompts.expand(n, -1, -1)


def _check_config(
    img_size: int, patch_size: int, dim: int, depth: int, heads: int, embedding_size: int, pool: str
) -> None:
    """Reject a bad configuration up front, with the value, instead of a shape error deep in a layer."""
    if not 0 < patch_size <= img_size:
        raise ModelError(f"patch_size must be in 1..{img_size}, got {patch_size}")
    if heads <= 0 or dim <= 0 or dim % heads:
        raise ModelError(f"dim must be a positive multiple of heads, got dim={dim}, heads={heads}")
    if depth < 1 or embedding_size <= 0:
        raise ModelError(f"depth and embedding_size must be >= 1, got {depth} and {embedding_size}")
    if pool not in POOLS:
        raise ModelError(f"unknown pool '{pool}'; known: {', '.join(POOLS)}")


def _init_weights(module: nn.Module) -> None:
    """ViT convention: small truncated-normal linear weights, zero biases (the default init is too wide)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def vit_face_tiny(*, patch_size: int = 8, embedding_size: int = 512, pool: str = "mean") -> ViTFace:
    """dim 192, depth 4, 3 heads: about 1.9 M parameters, a transformer the size of a mobile CNN."""
    return ViTFace(patch_size=patch_size, dim=192, depth=4, heads=3, embedding_size=embedding_size, pool=pool)


def vit_face_small(*, patch_size: int = 8, embedding_size: int = 512, pool: str = "mean") -> ViTFace:
    """dim 256, depth 6, 8 heads: about 5.0 M parameters."""
    return ViTFace(patch_size=patch_size, dim=256, depth=6, heads=8, embedding_size=embedding_size, pool=pool)
