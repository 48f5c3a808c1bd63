"""The pretrained MobileFaceNet of ``shared/models/mobilefacenet/mobilefacenet_ms1m.pt`` (foamliu, MS1M).

Rebuilt from the published key list and layer table only (``state_dict_keys.txt``, ``architecture.txt``),
so its module names match the checkpoint and ``load_state_dict(strict=True)`` works. It is the paper's
stage table (:data:`edgekd.models.mobilefacenet.STAGES`) with three differences from insightface's mbf:

* ReLU6 after every conv+BN, and plain ReLU in the depthwise-separable stage after the stem (no PReLU);
* that stage is a full depthwise 3x3 + pointwise 1x1 pair, each with its own BN (``bn1``, ``bn2``);
* the embedding is a 1x1 conv *with bias* (``conv3``) on the GDC output, then a BatchNorm1d (``bn``).

The output is 128-d and the input is ImageNet-normalised RGB (``PreprocessSpec.preset("imagenet")``).

>>> import torch
>>> mobilefacenet_ms1m()(torch.zeros(2, 3, 112, 112)).shape
torch.Size([2, 128])
"""

from __future__ import annotations

import os

import torch
from torch import nn

from edgekd.errors import ModelError
from edgekd.models import load_state_dict_file
from edgekd.models.mobilefacenet import STAGES, ConvBNAct, make_bottlenecks

PREPROCESS_PRESET = "imagenet"

EMBEDDING_SIZE = 128


class DepthwiseSeparable(nn.Module):
    """depthwise 3x3 → bn1 → ReLU → pointwise 1x1 → bn2 → ReLU (the checkpoint's ``dw_conv``).

    Which BN follows which conv is not in the key list (both are 64 wide). The running statistics
    settle it: a channel that the stem kills stays dead in ``bn1`` only, so ``bn1`` is per-channel,
    i.e. after the depthwise conv.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)
        # Two modules, not one used twice: PT2E quantizers match activations by module partition, and a
        # shared ReLU becomes one partition with two outputs (X86InductorQuantizer then refuses the model).
        self.relu1 = nn.ReLU(inplace=True)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.depthwise(x)))
        return self.relu2(self.bn2(self.pointwise(x)))


class GlobalDepthwiseConv(nn.Module):
    """7x7 depthwise conv without padding + BN, linear: ``(N, C, 7, 7)`` → ``(N, C, 1, 1)``."""

    def __init__(self, channels: int, kernel_size: int = 7):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.depthwise(x))


class MobileFaceNetMS1M(nn.Module):
    """Input ``(N, 3, 112, 112)`` ImageNet-normalised RGB, output ``(N, 128)`` unnormalised embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding_size = EMBEDDING_SIZE
        # Assigned in the checkpoint's key order so that state_dict() lists keys exactly as the file does.
        self.conv1 = ConvBNAct(3, 64, 3, 2, act="relu6")  # (N, 64, 56, 56)
        self.dw_conv = DepthwiseSeparable(64)  # (N, 64, 56, 56)
        self.conv2 = ConvBNAct(128, 512, 1, act="relu6")  # (N, 512, 7, 7)
        self.gdconv = GlobalDepthwiseConv(512)  # (N, 512, 1, 1)
        self.conv3 = nn.Conv2d(512, EMBEDDING_SIZE, 1)  # (N, 128, 1, 1), with bias
        self.bn = nn.BatchNorm1d(EMBEDDING_SIZE)
        self.features = make_bottlenecks(64, STAGES, act="relu6")  # 15 bottlenecks → (N, 128, 7, 7)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 112, 112)`` → the last feature map ``(N, 512, 7, 7)`` (for feature distillation)."""
        return self.conv2(self.features(self.dw_conv(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(self.gdconv(self.forward_features(x)))  # (N, 128, 1, 1)
        return self.bn(x.flatten(1))  # (N, 128)


def mobilefacenet_ms1m(*, weights: str | os.PathLike[str] | None = None) -> MobileFaceNetMS1M:
    """The ms1m MobileFaceNet; ``weights`` is a checkpoint path loaded with ``strict=True``."""
    model = MobileFaceNetMS1M()
    if weights is not None:
        try:
            model.load_state_dict(load_state_dict_file(weights), strict=True)
        except RuntimeError as exc:  # missing/unexpected keys or shapes: another architecture's file
            raise ModelError(f"{weights} does not fit mobilefacenet_ms1m: {exc}") from None
    return model
