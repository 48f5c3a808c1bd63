"""MobileFaceNet (Chen et al. 2018, https://arxiv.org/abs/1804.07573) in insightface's "mbf" layout.

A face embedder of about 1.2 M parameters (512-d output), small enough for int8 on a Raspberry Pi and
the usual student in edgekd. The layout follows the paper: a stride-2 3x3 stem, a depthwise 3x3,
MobileNetV2-style bottlenecks, a 1x1 conv to 512 channels, then a *global depthwise* 7x7 conv (GDC)
instead of average pooling, so that every position of the aligned face keeps its own weight. A linear
layer and a BatchNorm1d give the (unnormalised) embedding.

The building blocks (:class:`ConvBNAct`, :class:`InvertedResidual`, :func:`make_bottlenecks`) are shared
with :mod:`edgekd.models.mobilefacenet_ms1m`, whose pretrained weights use the same stage table.

>>> import torch
>>> mobilefacenet()(torch.zeros(2, 3, 112, 112)).shape
torch.Size([2, 512])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgekd.errors import ModelError

PREPROCESS_PRESET = "arcface"  # insightface convention: (x - 127.5) / 127.5, RGB

ACTIVATIONS = ("prelu", "relu", "relu6")

# Bottleneck stages after the stem, for a 112x112 input (the stem leaves 64 x 56 x 56). Columns:
#   t  expansion: hidden channels = t * input channels of each bottleneck
#   c  output channels (before the width multiplier)
#   n  how many bottlenecks; the first has stride s, the rest stride 1 with a residual add
#   s  stride of the first bottleneck (feature map after the stage in the trailing comment)
# The `n` column is what insightface's `blocks` tuple sets: (1 + blocks[1], 1, blocks[2], 1, blocks[3]).
# fmt: off
STAGES: tuple[tuple[int, int, int, int], ...] = (
    # t, c,   n, s
    (2, 64,  5, 2),  # 28x28
    (4, 128, 1, 2),  # 14x14
    (2, 128, 6, 1),  # 14x14
    (4, 128, 1, 2),  # 7x7
    (2, 128, 2, 1),  # 7x7
)
# fmt: on

STEM_CHANNELS = 64
HEAD_CHANNELS = 512  # the 1x1 conv before the GDC; not width-scaled so the embedding head stays fixed


def check_act(kind: str) -> None:
    """Reject an unknown activation name before any layer is built."""
    if kind not in ACTIVATIONS:
        raise ModelError(f"unknown activation '{kind}'; known: {', '.join(ACTIVATIONS)}")


def make_act(kind: str, channels: int) -> nn.Module:
    """Activation by name. PReLU is per channel (insightface); ReLU/ReLU6 quantize more simply."""
    check_act(kind)
    if kind == "prelu":
        return nn.PReLU(channels)
    return nn.ReLU6(inplace=True) if kind == "relu6" else nn.ReLU(inplace=True)


class ConvBNAct(nn.Sequential):
    """conv → BN → activation (``act=None``: linear). Bias-free: the BN supplies the shift.

    A Sequential so that the state_dict keys are ``.0`` (conv), ``.1`` (BN), which is also how the
    pretrained ms1m weights name them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "prelu",
        padding: int | None = None,
    ):
        padding = kernel_size // 2 if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(make_act(act, out_channels))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand → 3x3 depthwise (stride) → 1x1 linear projection.

    The projection has no activation (a ReLU on the narrow output would destroy information). The input
    is added back when the block keeps the shape (stride 1, same channels).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, stride: int, act: str = "prelu"):
        super().__init__()
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            ConvBNAct(in_channels, hidden, 1, act=act),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=act),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def scale_channels(channels: int, width: float) -> int:
    """Channels times ``width``, rounded to a multiple of 8 (int8 SIMD kernels prefer that)."""
    return max(8, int(channels * width + 4) // 8 * 8)


def make_bottlenecks(
    in_channels: int, stages: Sequence[tuple[int, int, int, int]], width: float = 1.0, act: str = "prelu"
) -> nn.Sequential:
    """Flatten a ``(t, c, n, s)`` stage table into one Sequential of :class:`InvertedResidual`."""
    blocks: list[nn.Module] = []
    for expansion, channels, repeats, stride in stages:
        out_channels = scale_channels(channels, width)
        for i in range(repeats):
            hidden = expansion * in_channels
            blocks.append(InvertedResidual(in_channels, out_channels, hidden, stride if i == 0 else 1, act))
            in_channels = out_channels
    return nn.Sequential(*blocks)


def stages_for_blocks(blocks: Sequence[int]) -> tuple[tuple[int, int, int, int], ...]:
    """:data:`STAGES` with insightface's 4 block counts; ``(1, 4, 6, 2)`` gives :data:`STAGES` itself."""
    _, n1, n2, n3 = blocks
    counts = (1 + n1, 1, n2, 1, n3)
    return tuple((t, c, n, s) for (t, c, _, s), n in zip(STAGES, counts, strict=True))


class MobileFaceNet(nn.Module):
    """MobileFaceNet with PReLU/ReLU/ReLU6, a width multiplier and insightface's ``blocks`` counts.

    ``blocks[0]`` is the depthwise stage after the stem: 1 gives a single depthwise 3x3 conv, more give
    that many residual bottlenecks; ``blocks[1:]`` are the residual bottlenecks of the three later stages.
    Input ``(N, 3, 112, 112)``, output ``(N, embedding_size)`` unnormalised embeddings.
    """

    def __init__(
        self,
        width: float = 1.0,
        blocks: Sequence[int] = (1, 4, 6, 2),
        embedding_size: int = 512,
        act: str = "prelu",
    ):
        super().__init__()
        _check_config(width, blocks, embedding_size, act)
        self.embedding_size = embedding_size
        stem = scale_channels(STEM_CHANNELS, width)
        self.conv1 = ConvBNAct(3, stem, 3, 2, act=act)  # (N, stem, 56, 56)
        self.dw_conv = _make_dw_stage(stem, blocks[0], act)  # (N, stem, 56, 56)
        self.features = make_bottlenecks(stem, stages_for_blocks(blocks), width, act)  # (N, c, 7, 7)
        last = scale_channels(STAGES[-1][1], width)
        self.conv2 = ConvBNAct(last, HEAD_CHANNELS, 1, act=act)  # (N, 512, 7, 7)
        # Global depthwise conv: one 7x7 filter per channel, linear. (N, 512, 1, 1)
        self.gdconv = ConvBNAct(HEAD_CHANNELS, HEAD_CHANNELS, 7, groups=HEAD_CHANNELS, act=None, padding=0)
        self.linear = nn.Linear(HEAD_CHANNELS, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 112, 112)`` → the last feature map ``(N, 512, 7, 7)`` (for feature distillation)."""
        return self.conv2(self.features(self.dw_conv(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gdconv(self.forward_features(x)).flatten(1)  # (N, 512)
        return self.bn(self.linear(x))  # (N, embedding_size)


def _check_config(width: float, blocks: Sequence[int], embedding_size: int, act: str) -> None:
    """Reject a bad configuration up front, with the value, instead of a shape error deep in a layer."""
    if width <= 0:
        raise ModelError(f"MobileFaceNet width must be > 0, got {width}")
    if len(blocks) != 4 or blocks[0] < 1 or min(blocks) < 0:
        raise ModelError(f"MobileFaceNet blocks must be 4 counts with blocks[0] >= 1, got {tuple(blocks)}")
    if embedding_size <= 0:
        raise ModelError(f"embedding_size must be > 0, got {embedding_size}")
    check_act(act)


def _make_dw_stage(channels: int, count: int, act: str) -> nn.Module:
    """One depthwise 3x3 ConvBNAct, or (count > 1, the large variants) a stack of residual bottlenecks."""
    if count == 1:
        return ConvBNAct(channels, channels, 3, groups=channels, act=act)
    return nn.Sequential(*(InvertedResidual(channels, channels, 2 * channels, 1, act) for _ in range(count)))


def mobilefacenet(
    *,
    width: float = 1.0,
    blocks: Sequence[int] = (1, 4, 6, 2),
    embedding_size: int = 512,
    act: str = "prelu",
) -> MobileFaceNet:
    """insightface's "mbf": about 1.2 M parameters (512-d)."""
    return MobileFaceNet(width=width, blocks=blocks, embedding_size=embedding_size, act=act)


def mobilefacenet_large(
    *,
    width: float = 2.0,
    blocks: Sequence[int] = (2, 8, 12, 4),
    embedding_size: int = 512,
    act: str = "prelu",
) -> MobileFaceNet:
    """Deeper and twice as wide (about 6.3 M parameters): a stronger student where the target affords it."""
    return MobileFaceNet(width=width, blocks=blocks, embedding_size=embedding_size, act=act)
