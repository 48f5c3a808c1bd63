"""Target-spec schemes → torchao ``QuantizationSpec``/``QuantizationConfig`` objects.

QAT uses fused moving-average fake quantizers (one kernel per tensor: the cheapest fake quantization in
torch); PTQ uses observers only (histogram for activations, min/max for weights).
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e.observer import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from torchao.quantization.pt2e.quantizer import QuantizationSpec

from edgekd.quant.fake_quant import LayoutAwareFakeQuantize
from edgekd.quant.spec import QScheme, TargetSpec

# The smallest scale an observer may pick: keeps near-constant channels from blowing up 1/scale.
EPS = 2**-12


def _observer(scheme: QScheme, is_qat: bool, is_weight: bool):
    if is_qat:
        base = MovingAveragePerChannelMinMaxObserver if scheme.per_channel else MovingAverageMinMaxObserver
        return LayoutAwareFakeQuantize.with_args(observer=base, eps=EPS)
    if scheme.per_channel:
        return PerChannelMinMaxObserver.with_args(eps=EPS)
    return (MinMaxObserver if is_weight else HistogramObserver).with_args(eps=EPS)


def qspec(scheme: QScheme, is_qat: bool, is_weight: bool = False) -> QuantizationSpec:
    """The torchao spec of one scheme (``is_weight``: min/max rather than histogram for PTQ)."""
    return QuantizationSpec(
        dtype=getattr(torch, scheme.dtype),
        quant_min=scheme.quant_min,
        quant_max=scheme.quant_max,
        qscheme=getattr(torch, scheme.qscheme),
        ch_axis=scheme.ch_axis if scheme.per_channel else None,
        is_dynamic=False,
        observer_or_fake_quant_ctr=_observer(scheme, is_qat, is_weight),
    )


def activation_qspec(spec: TargetSpec, is_qat: bool) -> QuantizationSpec:
    return qspec(spec.activations, is_qat)


def weight_qspec(spec: TargetSpec, is_qat: bool) -> QuantizationSpec:
    return qspec(spec.weights, is_qat, is_weight=True)


def prelu_alpha_qspec(spec: TargetSpec, is_qat: bool) -> QuantizationSpec | None:
    """``None``: the slope stays float (only its input/output are quantized)."""
    alpha = spec.prelu.alpha
    return qspec(alpha, is_qat, is_weight=True) if alpha is not None else None
