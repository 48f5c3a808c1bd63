"""IResNet-18/50/100: the ArcFace backbones of insightface's ``arcface_torch`` (Deng et al. 2019).

The usual *teachers*: large and accurate. Versus an ImageNet ResNet they change three things that matter
for 112x112 faces: the stem keeps full resolution (3x3 stride 1, no max-pool), the residual block is
BN-Conv-BN-PReLU-Conv-BN with the stride on the *second* conv, and the head flattens the whole 7x7 map
into a linear layer (spatial position carries identity information in an aligned face).

Module names follow ``arcface_torch`` so its published checkpoints load and are recognised by
:func:`edgekd.models.detect_architecture`.

>>> import torch
>>> iresnet18()(torch.zeros(2, 3, 112, 112)).shape
torch.Size([2, 512])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgekd.errors import ModelError

PREPROCESS_PRESET = "arcface"

# Residual stages. Columns: planes (output channels), stride of the first block; each stage halves the
# map: 112 → 56 → 28 → 14 → 7. The block counts per stage come from the depth (``LAYERS``).
# fmt: off
STAGES: tuple[tuple[int, int], ...] = (
    # planes, stride
    (64,  2),  # 56x56
    (128, 2),  # 28x28
    (256, 2),  # 14x14
    (512, 2),  # 7x7
)
# fmt: on

LAYERS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}

FINAL_MAP = 7 * 7  # spatial positions flattened into the embedding layer


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


class IBasicBlock(nn.Module):
    """BN → conv3x3 → BN → PReLU → conv3x3 (stride) → BN, plus the (downsampled) input; no final ReLU."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


def make_stage(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """The first block changes resolution and width; the others keep both."""
    layers = [IBasicBlock(in_channels, planes, stride)]
    layers += [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class IResNet(nn.Module):
    """Input ``(N, 3, 112, 112)`` in ``(x - 127.5) / 127.5``; output ``(N, embedding_size)`` unnormalised."""

    def __init__(self, layers: Sequence[int], embedding_size: int = 512, dropout: float = 0.0):
        super().__init__()
        if len(layers) != len(STAGES) or min(layers) < 1:
            raise ModelError(f"IResNet needs {len(STAGES)} block counts >= 1, got {tuple(layers)}")
        if embedding_size <= 0:
            raise ModelError(f"embedding_size must be > 0, got {embedding_size}")
        self.embedding_size = embedding_size
        self.conv1 = conv3x3(3, 64)  # (N, 64, 112, 112)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU(64)
        widths = [64] + [planes for planes, _ in STAGES]
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            make_stage(cin, planes, blocks, stride)
            for cin, (planes, stride), blocks in zip(widths[:-1], STAGES, layers, strict=True)
        )
        self.bn2 = nn.BatchNorm2d(widths[-1])  # (N, 512, 7, 7)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1] * FINAL_MAP, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)
        # As in arcface_torch: the embedding BN only centres and shifts; a learnable scale would let the
        # network shrink the pre-normalisation embedding for free.
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 112, 112)`` → the last feature map ``(N, 512, 7, 7)`` (for feature distillation)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.bn2(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.forward_features(x).flatten(1))  # (N, 512 * 49)
        return self.features(self.fc(x))  # (N, embedding_size)


def _create_iresnet(depth: int, embedding_size: int, dropout: float) -> IResNet:
    return IResNet(LAYERS[depth], embedding_size=embedding_size, dropout=dropout)


def iresnet18(*, embedding_size: int = 512, dropout: float = 0.0) -> IResNet:
    """IResNet-18, about 24 M parameters."""
    return _create_iresnet(18, embedding_size, dropout)


def iresnet50(*, embedding_size: int = 512, dropout: float = 0.0) -> IResNet:
    """IResNet-50, about 44 M parameters."""
    return _create_iresnet(50, embedding_size, dropout)


def iresnet100(*, embedding_size: int = 512, dropout: float = 0.0) -> IResNet:
    """IResNet-100, about 65 M parameters: the strongest arcface_torch teacher."""
    return _create_iresnet(100, embedding_size, dropout)
