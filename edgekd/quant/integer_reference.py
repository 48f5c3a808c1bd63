"""The PT2E converted model computed with a runtime's own integer arithmetic: a bit-exact reference.

The converted model (``dequantize → float op → quantize``) says *which* int8 network the artifact is,
but computes it in float32: summation order and the double rounding of ``/ scale`` put a few results a
hair on the other side of a rounding boundary (measured: 3e-5 of the elements at layer 6), and an int8
network amplifies each one-step flip layer by layer (37 % of the elements differ by layer 60). Two
correct implementations of the same int8 network therefore agree only to a mean cosine of about
0.997-0.999 on MobileFaceNet, and a parity check against the float simulation cannot tell a conversion
bug from that floor.

:class:`IntegerReference` runs the same graph, the same int8 weights, scales and zero points, with the
runtime's integer arithmetic: exact int32 accumulation (float64 convolutions of integer tensors are
exact at these sizes), then the runtime's requantization, step for step as its kernels do it. Matched
layer by layer on MobileFaceNet, every element equal: ONNX Runtime 1.31's MLAS on x86-64 (fused
QLinearConv/QLinearAdd), LiteRT 2.3's XNNPACK delegate on x86-64 (CONV_2D/DEPTHWISE_CONV_2D/ADD) and
OpenVINO 2026.4's CPU plugin (int8 convolutions with fused residual adds; on a trained checkpoint 243
of 256 faces bit-identical, the rest off by a few depthwise-conv outputs: docs/convert.md). The
rules per runtime live in :mod:`edgekd.quant.runtime_arithmetic`. Ops without an integer rule
(PReLU, pooling, the final BatchNorm) run in float as in the converted model, which is what ORT and
LiteRT do with them too (dequantize → float op → quantize). For OpenVINO, graphs with ops the twin
has no exact rule for are refused (:func:`unsupported_ops`) and parity falls back to float32.
"""

from __future__ import annotations

import dataclasses
import logging
import platform

import torch
import torchao.quantization.pt2e  # noqa: F401  (registers the quantized_decomposed ops)
from torch import nn
from torch.fx import GraphModule, Interpreter, Node

from edgekd.isa import MAX_EXACT_WEIGHT, X86_VNNI, pair_saturating
from edgekd.quant.bias import attr_value
from edgekd.quant.runtime_arithmetic import (  # noqa: F401  (re-exported: the arithmetic's names)
    ARITHMETIC,
    F32,
    F64,
    OpenVinoCpuX86,
    OrtMlasX86,
    UnsupportedPattern,
    XnnpackX86,
    _Accumulator,
    _Dequantized,
    _f32,
)

log = logging.getLogger(__name__)
aten = torch.ops.aten
qd = torch.ops.quantized_decomposed

DEQUANTIZE = {qd.dequantize_per_tensor.default, qd.dequantize_per_channel.default}
QUANTIZE = {qd.quantize_per_tensor.default}
QUANTIZE_CHANNEL = {qd.quantize_per_channel.default}
WEIGHTED = {aten.conv2d.default, aten.linear.default}
CLAMPS = {aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default}
ADDS = {aten.add.Tensor, aten.add_.Tensor}


class _IntegerInterpreter(Interpreter):
    """Runs a converted graph; conv/linear/add chains between dequantize and quantize in integers."""

    def __init__(self, gm: GraphModule, arithmetic: type[OrtMlasX86], saturating: bool = False):
        super().__init__(gm)
        self.arithmetic = arithmetic
        self.saturating = saturating  # u8×s8 pairs summed in saturating int16 (x86 without VNNI)
        self.facts: dict[Node, _Dequantized | _Accumulator] = {}

    def run_node(self, n: Node):
        if n.op != "call_function":
            return super().run_node(n)
        args, _ = self.fetch_args_kwargs_from_env(n)
        if n.target in DEQUANTIZE:
            self._note_dequantized(n, args)
        elif n.target in WEIGHTED:
            noted = self._note_accumulator(n, args)
            if noted and (_only_requantized(n) or self._float_output_gemm(n)):
                return self.facts[n].value()  # no float32 conv: nothing reads it
        elif n.target in CLAMPS:
            self._note_clamp(n, args)
        elif n.target in QUANTIZE_CHANNEL or (n.target in QUANTIZE and _is_constant(n.args[0])):
            return _quantize_constant(n, args, self.arithmetic)
        elif n.target in QUANTIZE:
            return self._quantize(n, args)
        return super().run_node(n)

    def _float_output_gemm(self, n: Node) -> bool:
        """A linear read in float (e.g. by the head's BatchNorm): ORT fuses ``DQ → Gemm`` into a QGemm
        with float output, ``float32(acc) · (sx·sw)`` over the int32 (on AVX2: pair-saturated) sum."""
        return n.target == aten.linear.default and self.arithmetic.float_output_gemm

    def _note_dequantized(self, n: Node, args: tuple) -> None:
        q, scale, zp = args[0], args[1], args[2]
        qmin, qmax = (args[4], args[5]) if n.target == qd.dequantize_per_channel.default else args[3:5]
        self.facts[n] = _Dequantized(
            q, _f32(scale), torch.as_tensor(zp).to(torch.int64), int(qmin), int(qmax), self._branch(n)
        )

    def _branch(self, n: Node) -> _Accumulator | None:
        """The accumulator a dequantize's input was requantized from, when that quantize → dequantize
        chain has one reader, an add: the residual branch a runtime can fuse into its conv."""
        quantize = n.args[0]
        if not (isinstance(quantize, Node) and quantize.target in QUANTIZE):
            return None
        if len(quantize.users) != 1 or len(n.users) != 1:
            return None
        src = self.facts.get(quantize.args[0])
        reader = next(iter(n.users))
        return src if isinstance(src, _Accumulator) and reader.target in ADDS else None

    def _note_accumulator(self, n: Node, args: tuple) -> bool:
        """Record the exact accumulator of a conv/linear on integer operands; False when they are not."""
        x, w = self.facts.get(n.args[0]), self.facts.get(n.args[1])
        bias_node = n.args[2] if len(n.args) > 2 else None
        bias = self.facts.get(bias_node) if isinstance(bias_node, Node) else None
        if not (isinstance(x, _Dequantized) and isinstance(w, _Dequantized) and x.scale.dim() == 0):
            return False
        sx, sw = self.arithmetic.dequant_scale(x), self.arithmetic.dequant_scale(w)
        xi = (x.q.to(torch.int64) - x.zero_point).to(F64)
        wzp = w.zero_point.reshape(-1, *[1] * (w.q.dim() - 1)) if w.zero_point.dim() else w.zero_point
        wi = (w.q.to(torch.int64) - wzp).to(F64)
        b, float_bias = None, None
        if isinstance(bias, _Dequantized):
            b = bias.q.to(F64)
        elif bias_node is not None and self.arithmetic.float_bias:
            float_bias = args[2].to(F32)
        elif bias_node is not None:  # a float bias: converters round it to int32 accumulator units,
            # the quotient in float64 (litert/TFLite; measured: float32 gives ties on the wrong side)
            b = torch.round(args[2].to(F64) / (sx.to(F64) * sw.to(F64)))
        if self.saturating and _weight_bound(w) > MAX_EXACT_WEIGHT:
            acc = self.arithmetic.pair_saturated(x, wi, b, n.target == aten.linear.default, args[3:])
        elif n.target == aten.conv2d.default:
            acc = torch.nn.functional.conv2d(xi, wi, b, *args[3:])
        else:
            acc = torch.nn.functional.linear(xi, wi, b)
        self.facts[n] = _Accumulator(acc.round().to(torch.int64), sx, sw, bias=float_bias)
        return True

    def _note_clamp(self, n: Node, args: tuple) -> None:
        src = self.facts.get(n.args[0])
        if not isinstance(src, _Accumulator):
            return
        relu = n.target in (aten.relu.default, aten.relu_.default)
        lo, hi = (0.0, None) if relu else (float(args[1]), float(args[2]))
        self.facts[n] = dataclasses.replace(src, lo=lo, hi=hi)

    def _quantize(self, n: Node, args: tuple) -> torch.Tensor:
        scale, zp, qmin, qmax, dtype = _f32(args[1]), int(args[2]), int(args[3]), int(args[4]), args[5]
        src = self.facts.get(n.args[0])
        if isinstance(src, _Accumulator):
            q = self.arithmetic.requantize(src, scale, zp, qmin, qmax)
        elif (added := self._added(n.args[0])) is not None:
            q = self.arithmetic.add(*added, scale, zp, qmin, qmax)
        else:
            q = self.arithmetic.quantize(args[0], scale, zp, qmin, qmax)
        return q.to(dtype)

    def _added(self, node: object) -> tuple[_Dequantized, _Dequantized] | None:
        if not (isinstance(node, Node) and node.target in ADDS and len(node.args) == 2):
            return None
        a, b = self.facts.get(node.args[0]), self.facts.get(node.args[1])
        if not (isinstance(a, _Dequantized) and isinstance(b, _Dequantized)):
            return None
        return (a, b) if a.scale.dim() == b.scale.dim() == 0 else None


def _only_requantized(n: Node) -> bool:
    """Whether every use of a conv/linear output is a quantize, directly or through a ReLU/ReLU6."""
    return all(
        u.target in QUANTIZE or (u.target in CLAMPS and all(v.target in QUANTIZE for v in u.users))
        for u in n.users
    )


def _weight_bound(w: _Dequantized) -> int:
    return max(-w.quant_min, w.quant_max)


def _is_constant(node: object) -> bool:
    return isinstance(node, Node) and node.op == "get_attr"


def _quantize_constant(n: Node, args: tuple, arithmetic: type[OrtMlasX86]) -> torch.Tensor:
    """A weight quantized inside the graph (OpenVINO/litert graphs keep float weights): the value the
    converter folds it to, by the arithmetic's rule."""
    if n.target in QUANTIZE_CHANNEL:
        w, scale, zp, axis, qmin, qmax, dtype = args
        shape = [1] * w.dim()
        shape[axis] = -1
        scale, zp = torch.as_tensor(scale).reshape(shape), torch.as_tensor(zp).reshape(shape)
    else:
        w, scale, zp, qmin, qmax, dtype = args
        scale, zp = torch.as_tensor(scale), torch.as_tensor(zp)
    return arithmetic.quantize_constant(w, scale, zp, int(qmin), int(qmax)).to(dtype)


def unsupported_ops(converted: GraphModule, arithmetic: type[OrtMlasX86], isa: str = X86_VNNI) -> list[str]:
    """Nodes whose runtime arithmetic the twin does not reproduce (empty: the twin is exact). On an ISA
    where the runtime sums u8×s8 pairs in saturating int16: the 8-bit weights of an arithmetic without
    a verified pair rule. For OpenVINO: residual adds with a float input (X86InductorQuantizer graphs:
    the plugin runs those as a JIT subgraph with compile-time constants), PReLU (not matched against
    the plugin), and convs with no or an all-zero bias (the converter drops it and the plugin then folds
    the dequantization scale into the FakeQuantize interval per channel: matched on one layer only)."""
    nodes = list(converted.graph.nodes)
    bad = []
    if pair_saturating(arithmetic.runtime, isa) and arithmetic.pair_saturated is None:
        bad = [n.name for n in nodes if _wide_weight(n)]
    if not arithmetic.quantized_adds_only:
        return bad
    return bad + [
        n.name for n in nodes if _float_add(n) or n.target == aten.prelu.default or _no_bias(converted, n)
    ]


def _wide_weight(n: Node) -> bool:
    """A per-channel weight (de)quantize whose range lets a u8×s8 pair sum leave int16."""
    if n.target not in (qd.dequantize_per_channel.default, qd.quantize_per_channel.default):
        return False
    return max(-int(n.args[4]), int(n.args[5])) > MAX_EXACT_WEIGHT


def _float_add(n: Node) -> bool:
    return n.target in ADDS and any(isinstance(a, Node) and a.target not in DEQUANTIZE for a in n.args[:2])


def _no_bias(gm: GraphModule, n: Node) -> bool:
    if n.target not in WEIGHTED:
        return False
    bias = n.args[2] if len(n.args) > 2 else None
    if bias is None:
        return True
    if not (isinstance(bias, Node) and bias.op == "get_attr"):
        return False
    return not bool(attr_value(gm, str(bias.target)).any())


class IntegerReference(nn.Module):
    """A converted PT2E model evaluated with a runtime's integer arithmetic (see the module docstring).

    The graph is held outside the module tree: converted graphs refuse ``.train()``/``.eval()``.
    """

    def __init__(self, converted: GraphModule, arithmetic: str, isa: str = X86_VNNI):
        super().__init__()
        if arithmetic not in ARITHMETIC:
            raise ValueError(f"unknown integer arithmetic '{arithmetic}' (known: {sorted(ARITHMETIC)})")
        object.__setattr__(self, "graph_module", converted)
        self.arithmetic = ARITHMETIC[arithmetic]
        self.isa = isa
        if bad := unsupported_ops(converted, self.arithmetic, isa):
            hint = ""
            if any(_float_add(n) for n in converted.graph.nodes):
                hint = " (residual adds with a float input: a graph from the x86 quantizer; retrain it)"
            elif any(_wide_weight(n) for n in converted.graph.nodes):
                hint = f" (8-bit weights summed in saturating int16 on {isa}: no verified pair rule)"
            nodes = ", ".join(bad[:4])
            raise UnsupportedPattern(
                f"{arithmetic} on {isa}: no exact rule for {len(bad)} node(s) ({nodes}, ...){hint}"
            )

    @property
    def name(self) -> str:
        """What parity reports as the reference: the arithmetic and the ISA whose kernels it mirrors."""
        return f"{self.arithmetic.name}, {self.isa}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saturating = pair_saturating(self.arithmetic.runtime, self.isa)
        with torch.no_grad():
            return _IntegerInterpreter(self.graph_module, self.arithmetic, saturating).run(x.contiguous())


def host_supports(reference: str) -> bool:
    """Whether this machine runs the kernels the reference mirrors (MLAS x86 needs an x86-64 CPU)."""
    if reference in ARITHMETIC:  # every arithmetic here mirrors x86-64 kernels
        return platform.machine().lower() in ("x86_64", "amd64")
    return True


def parity_reference(converted: GraphModule, reference: str, isa: str = X86_VNNI) -> nn.Module:
    """The model parity is checked against: the converted model itself for ``float``, else its integer twin on
    ``isa`` (how the deployment CPU accumulates: :mod:`edgekd.isa`). Falls back to the float model where
    this host does not run the mirrored kernels, or where the graph holds ops the twin has no exact rule
    for (logged: e.g. an OpenVINO checkpoint trained with the x86 quantizer, before the openvino target
    switched to edgekd's annotator)."""
    if reference == "float" or not host_supports(reference):
        return converted
    try:
        return IntegerReference(converted, reference, isa)
    except UnsupportedPattern as exc:
        log.warning("parity against the float32 converted model: %s", exc)
        return converted
