"""The PT2E quantizer of each target spec, always with PReLU annotation on top.

``edgekd`` (ONNX Runtime, OpenVINO): :class:`~edgekd.quant.annotator.EdgeKDQuantizer`.
``x86_inductor`` (user specs; OpenVINO before edgekd's annotator): torchao's X86InductorQuantizer with
the spec's schemes. ``litert`` (TFLite): litert-torch's
PT2EQuantizer with the spec's schemes, through :mod:`edgekd.quant.litert_shim`.
"""

from __future__ import annotations

from torch.fx import Node
from torchao.quantization.pt2e.quantizer import Quantizer

from edgekd.errors import UnsupportedTargetError
from edgekd.quant.annotator import (
    EdgeKDQuantizer,
    PReLUQuantizer,
    annotate_adds,
    annotate_conv_relu6,
    module_path,
)
from edgekd.quant.qspecs import activation_qspec, prelu_alpha_qspec, weight_qspec
from edgekd.quant.spec import TargetSpec


def _skip(spec: TargetSpec):
    prefixes = tuple(spec.keep_float)

    def skip(node: Node) -> bool:
        path = module_path(node)
        return bool(prefixes) and any(path == p or path.startswith(p + ".") for p in prefixes)

    return skip


def _x86(spec: TargetSpec, is_qat: bool) -> Quantizer:
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        QuantizationConfig,
        X86InductorQuantizer,
    )

    act = activation_qspec(spec, is_qat)
    config = QuantizationConfig(act, act, weight_qspec(spec, is_qat), None, is_qat)
    quantizer = X86InductorQuantizer().set_global(config)
    for prefix in spec.keep_float:
        quantizer.set_module_name_qconfig(prefix, None)
    return quantizer


def _litert(spec: TargetSpec, is_qat: bool) -> Quantizer:
    try:
        from edgekd.quant import litert_shim

        litert_shim.apply()
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
        from litert_torch.quantize.pt2e_quantizer_utils import QuantizationConfig
    except ImportError as exc:
        raise UnsupportedTargetError(
            f"target '{spec.name}' needs litert-torch: pip install 'edgekd[tflite]' ({exc})"
        ) from None
    act, weight = activation_qspec(spec, is_qat), weight_qspec(spec, is_qat)
    skip = _skip(spec)

    class LitertQuantizer(PT2EQuantizer):
        """litert-torch's quantizer; conv → ReLU6 and the residual adds are claimed first (see
        :func:`annotate_conv_relu6`, :func:`annotate_adds`: litert misses both on torch 2.13)."""

        def annotate(self, model):
            annotate_conv_relu6(model, act, weight, skip)
            model = super().annotate(model)
            annotate_adds(model, act, skip)
            return model

    config = QuantizationConfig(act, act, weight, None, None, is_qat, False)
    quantizer = LitertQuantizer().set_global(config)
    for prefix in spec.keep_float:
        quantizer.set_module_name(prefix, None)
    return quantizer


def build_quantizer(spec: TargetSpec, is_qat: bool = True) -> Quantizer:
    """The spec's quantizer (QAT fake quantizers, or PTQ observers when ``is_qat`` is False)."""
    act = activation_qspec(spec, is_qat)
    if spec.quantizer == "edgekd":
        base: Quantizer = EdgeKDQuantizer(act, weight_qspec(spec, is_qat), skip=_skip(spec))
    elif spec.quantizer == "x86_inductor":
        base = _x86(spec, is_qat)
    elif spec.quantizer == "litert":
        base = _litert(spec, is_qat)
    else:  # guarded by the spec's Literal, kept for specs built by hand
        raise UnsupportedTargetError(f"unknown quantizer kind '{spec.quantizer}'")
    if not spec.prelu.quantize:
        return base
    return PReLUQuantizer(base, act, prelu_alpha_qspec(spec, is_qat), skip=_skip(spec))
