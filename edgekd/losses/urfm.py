"""Unified Receptive Fields Mapping, URFM (Zhao et al., ACM MM 2023, https://arxiv.org/abs/2306.14662).

A ViT token and a CNN pixel at the same place on the face do not see the same region: the token has
attended to the whole face since block 1, the pixel sees a growing square window. Comparing them one
to one asks the student to copy something it cannot compute. URFM instead lets ``L`` learnable *local
centres*, each with a fixed position on the 112x112 face, attend over the pixels of either network
with a bias that depends on how far each pixel is from the centre. Both networks are then summarised
at the same ``L`` places with the same distance-shaped receptive field: ``h_T, h_S`` ``(N, L, d)``.

Attention of centre ``i`` (query ``c_i W_q``) over pixel ``j`` (key ``f_j W_k``), per head::

    e_ij = (c_i W_q + b_B(i,j)) (f_j W_k)ᵀ / √d_head        h_i = Σ_j softmax_j(e_ij) f_j W_v  (then W_o)

``b`` is a learnable vector per distance bucket (iRPE's "contextual" relative position), the bucket
``B(i, j) = bucket(D_ij)`` of the face distance::

    D_ij = ‖p_i − p_j‖₂ + γ · S(p_i, p_j)

``S`` is our reading of the paper's "facial structure distance" (docs/methods/cakd.md): every position
belongs to the region of its nearest ArcFace template landmark (eyes, nose tip, mouth corners), and
``S`` is the distance between the two regions' landmarks: 0 inside one facial part, larger across
parts, so a centre on the left eye prefers left-eye pixels over equally near cheek pixels. Positions
are in pixels of the 112x112 template; buckets are exact for the first ``num_buckets // 2`` units of
``bucket_unit`` pixels and log-spaced beyond (as iRPE's piecewise index). Tokens without a position on
the face (APT prompt outputs) all fall in one extra bucket.

>>> import torch
>>> urfm = URFM(dim=64, num_centres=16, heads=4)
>>> h, attn = urfm(torch.randn(2, 49, 64), grid=(7, 7))
>>> h.shape, attn.shape
(torch.Size([2, 16, 64]), torch.Size([2, 4, 16, 49]))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from edgekd.errors import ConfigError

IMG_SIZE = 112

# The insightface/ArcFace 5-point template for 112x112 crops (x, y in pixels): the points every LFW
# image in ../shared was warped onto, so they are where these facial parts are in every input.
ARCFACE_LANDMARKS = (
    (38.2946, 51.6963),  # left eye
    (73.5318, 51.5014),  # right eye
    (56.0252, 71.7366),  # nose tip
    (41.5493, 92.3655),  # left mouth corner
    (70.7299, 92.2041),  # right mouth corner
)


def grid_positions(rows: int, cols: int, size: float = IMG_SIZE) -> Tensor:
    """Centres ``(rows·cols, 2)`` (x, y pixels) of a ``rows × cols`` grid over the face, row-major.

    Row-major is the order of ``(N, C, H, W).flatten(2)`` and of ViT patch tokens.

    >>> grid_positions(2, 2).tolist()
    [[28.0, 28.0], [84.0, 28.0], [28.0, 84.0], [84.0, 84.0]]
    """
    ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([(xs.flatten() + 0.5) * size / cols, (ys.flatten() + 0.5) * size / rows], dim=1)


def facial_regions(positions: Tensor) -> Tensor:
    """Index ``(M,)`` of the nearest ArcFace landmark for each ``(M, 2)`` position."""
    landmarks = torch.tensor(ARCFACE_LANDMARKS, dtype=positions.dtype)
    return torch.cdist(positions, landmarks).argmin(dim=1)


def face_distance(a: Tensor, b: Tensor, gamma: float) -> Tensor:
    """``D = ‖a_i − b_j‖ + γ·S(a_i, b_j)`` ``(La, Mb)`` for positions ``(La, 2)``, ``(Mb, 2)`` in pixels.

    >>> eyes = torch.tensor([list(ARCFACE_LANDMARKS[0]), list(ARCFACE_LANDMARKS[1])])
    >>> round(float(face_distance(eyes[:1], eyes[1:], gamma=1.0)), 2)  # 35.24 px apart, other region
    70.48
    """
    landmarks = torch.tensor(ARCFACE_LANDMARKS, dtype=a.dtype)
    structure = torch.cdist(landmarks, landmarks)[facial_regions(a)][:, facial_regions(b)]  # (La, Mb)
    return torch.cdist(a, b) + gamma * structure


def max_face_distance(gamma: float, size: float = IMG_SIZE) -> float:
    """Largest possible ``D`` on the face: the crop's diagonal plus γ times the widest landmark pair."""
    landmarks = torch.tensor(ARCFACE_LANDMARKS)
    return size * math.sqrt(2) + gamma * float(torch.cdist(landmarks, landmarks).max())


def bucketize(distance: Tensor, unit: float, num_buckets: int, far: float) -> Tensor:
    """Distance (pixels) → bucket in ``0..num_buckets-1``: exact below ``α = num_buckets // 2`` units, then
    log-spaced up to ``far`` pixels (and beyond, the last bucket). Near distances need fine buckets
    (neighbouring pixels differ), far ones do not (all "elsewhere on the face").

    >>> bucketize(torch.tensor([0.0, 7.9, 8.0, 20.0, 1e4]), unit=8.0, num_buckets=8, far=160.0).tolist()
    [0, 0, 1, 2, 7]
    """
    alpha = num_buckets // 2
    u = distance / unit
    span = max(math.log(far / unit / alpha), 1e-6)
    log_part = alpha + torch.log(u.clamp_min(alpha) / alpha) / span * (num_buckets - alpha)
    index = torch.where(u < alpha, u.floor(), log_part.floor())
    return index.clamp(0, num_buckets - 1).long()


def check_urfm_options(dim: int, num_centres: int, heads: int, num_buckets: int, gamma: float) -> None:
    """ConfigError naming the bad value (and valid ones), before any layer is built."""
    if dim <= 0 or heads <= 0 or dim % heads:
        raise ConfigError(f"URFM: dim must be a positive multiple of heads, got dim={dim}, heads={heads}")
    side = math.isqrt(max(num_centres, 0))
    if num_centres < 1 or side * side != num_centres:
        near = sorted({max(side, 1) ** 2, (side + 1) ** 2})
        raise ConfigError(
            f"URFM: num_centres must be a square (centres sit on a √L x √L grid over the face), got "
            f"{num_centres}; nearest: {', '.join(map(str, near))}"
        )
    if num_buckets < 2:
        raise ConfigError(f"URFM: num_buckets must be >= 2, got {num_buckets}")
    if not math.isfinite(gamma) or gamma < 0:
        raise ConfigError(f"URFM: gamma must be finite and >= 0, got {gamma}")


class URFM(nn.Module):
    """``L`` local centres attend over ``(N, M, dim)`` grid tokens (+ optional position-free tokens).

    ``forward(f, grid=(rows, cols), extra=None) -> (h (N, L, dim), attention (N, heads, L, M + P))``.
    The inputs are layer-normalised (no affine) first, so the mapping is scale-free: it cannot lower a
    loss between two sides by shrinking them.
    """

    def __init__(
        self,
        dim: int,
        num_centres: int = 16,
        heads: int = 4,
        num_buckets: int = 16,
        gamma: float = 1.0,
        bucket_unit: float = 8.0,
    ):
        super().__init__()
        check_urfm_options(dim, num_centres, heads, num_buckets, gamma)
        self.dim, self.heads, self.num_buckets = dim, heads, num_buckets
        self.gamma, self.bucket_unit = gamma, bucket_unit
        side = math.isqrt(num_centres)
        self.register_buffer("centre_positions", grid_positions(side, side), persistent=False)  # (L, 2)
        self.centres = nn.Parameter(torch.empty(num_centres, dim))
        nn.init.trunc_normal_(self.centres, std=0.02)
        # one bias vector per bucket and head, plus the bucket of position-free tokens
        self.bucket_bias = nn.Parameter(torch.zeros(num_buckets + 1, heads, dim // heads))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def buckets(self, grid: tuple[int, int], extra: int = 0) -> Tensor:
        """Bucket index ``(L, rows·cols + extra)`` of every (centre, token) pair."""
        positions = grid_positions(*grid)
        distance = face_distance(self.centre_positions.cpu(), positions, self.gamma)
        index = bucketize(distance, self.bucket_unit, self.num_buckets, max_face_distance(self.gamma))
        free = torch.full((index.shape[0], extra), self.num_buckets, dtype=torch.long)
        return torch.cat([index, free], dim=1).to(self.centres.device)

    def forward(self, f: Tensor, grid: tuple[int, int], extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, m, d = f.shape
        if m != grid[0] * grid[1] or d != self.dim:
            raise ValueError(
                f"URFM: expected (N, {grid[0]}x{grid[1]}, {self.dim}) tokens, got {tuple(f.shape)}"
            )
        tokens = f if extra is None else torch.cat([f, extra], dim=1)  # (N, M + P, dim)
        tokens = self.norm(tokens)
        h, dh = self.heads, d // self.heads
        q = self.q(self.centres).reshape(-1, h, dh).transpose(0, 1)  # (heads, L, dh)
        k = self.k(tokens).reshape(n, -1, h, dh).transpose(1, 2)  # (N, heads, M + P, dh)
        v = self.v(tokens).reshape(n, -1, h, dh).transpose(1, 2)  # (N, heads, M + P, dh)
        index = self.buckets(grid, tokens.shape[1] - m)  # (L, M + P)
        kb = torch.einsum("nhjd,bhd->nhjb", k, self.bucket_bias)  # (N, heads, M + P, buckets + 1)
        cols = torch.arange(index.shape[1], device=index.device)
        bias = kb[:, :, cols.unsqueeze(0), index]  # (N, heads, L, M + P): b_B(i,j) · k_j
        attn = ((q @ k.transpose(-2, -1) + bias) / math.sqrt(dh)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, -1, d)  # (N, L, dim)
        return self.out(out), attn
