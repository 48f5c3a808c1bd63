"""The fake quantizer of every QAT target: torch's fused observer + fake quant, layout-aware.

CPU training runs channels_last (1.5-2x faster depthwise convs). torch's fused moving-average kernel
computes the tensor's min/max through ``aminmax``, which first copies a channels_last tensor into NCHW
order: one full copy of every activation, every step (measured: the largest single cost of a QAT step,
about 0.35 s of 0.87 s for MobileFaceNet at batch 32). A per-tensor min/max and an elementwise fake
quantization do not depend on the memory order, so the kernel gets the NHWC view (``permute``, no copy)
and the result is permuted back: same numbers, no copy. Per-channel quantizers (weights) keep their
layout: their channel axis matters and weights are small.

Two more fixes make the converted int8 network the one QAT trained (measured on trained MobileFaceNets):
- Weights (per channel) are fake-quantized with the observer's own qparams, as torchao's plain
  ``FakeQuantize`` does. torch's fused kernel ignores the symmetric flag per channel: a channel whose
  weights all have one sign got an affine grid (zero point ±127, about half the scale; several channels
  in most layers of a trained MobileFaceNet), which no runtime's symmetric int8 weights can hold
  (XNNPACK refuses them, ORT leaves its fast path), and the other channels' scales were 0.4 % off what
  conversion computes.
- Activations (per tensor) convert with the qparams the fused kernel applied (its buffers): the
  observer's ``calculate_qparams``, which PT2E ``convert`` asks for, recomputes them in Python with
  another rounding and minimum scale, so a few activation scales differed too.
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e.fake_quantize import FakeQuantize, FusedMovingAvgObsFakeQuantize

_TO_NHWC = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)


def _is_channels_last(x: torch.Tensor) -> bool:
    """4-D and laid out NHWC in memory (but not also NCHW-contiguous, as size-1 dims can make it)."""
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous(memory_format=torch.contiguous_format)
    )


class LayoutAwareFakeQuantize(FusedMovingAvgObsFakeQuantize):
    """:class:`FusedMovingAvgObsFakeQuantize` that feeds channels_last activations as their NHWC view
    and fake-quantizes weights (per channel) on the observer's own grid (see the module docstring)."""

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The qparams the forward pass applies: the observer's per channel, the fused kernel's
        buffers per tensor (once it has observed anything)."""
        observer = self.activation_post_process
        if self.is_per_channel or not torch.isfinite(observer.min_val).all():
            return super().calculate_qparams()
        return self.scale.clone(), self.zero_point.clone()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.is_per_channel:
            return self._per_channel(X)
        if not _is_channels_last(X):
            return super().forward(X)
        return super().forward(X.permute(*_TO_NHWC)).permute(*_TO_NCHW)

    def _per_channel(self, X: torch.Tensor) -> torch.Tensor:
        """torchao's plain :class:`FakeQuantize` step (observe, take the observer's symmetric qparams,
        fake-quantize per channel; this class derives from it). A weight never observed (an eval pass
        before any training step) is observed now: torch's fused kernel would apply its placeholder
        qparams (scale 0.1, zero point 127) instead."""
        observed = self.activation_post_process.min_val.numel() == X.size(self.ch_axis)
        if observed or self.observer_enabled[0] == 1:
            return FakeQuantize.forward(self, X)
        self.enable_observer()
        try:
            return FakeQuantize.forward(self, X)
        finally:
            self.disable_observer()
