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
QLinearConv/QLinearAdd) and LiteRT 2.3's XNNPACK delegate on x86-64 (CONV_2D/DEPTHWISE_CONV_2D/ADD).
Ops without an integer rule (PReLU, pooling, the final BatchNorm) run in float as in the converted
model, which is what the runtimes do with them too (dequantize → float op → quantize). OpenVINO is not
covered: see docs/convert.md.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch
import torchao.quantization.pt2e  # noqa: F401  (registers the quantized_decomposed ops)
from torch import nn
from torch.fx import GraphModule, Interpreter, Node

aten = torch.ops.aten
qd = torch.ops.quantized_decomposed
F32, F64 = torch.float32, torch.float64

DEQUANTIZE = {qd.dequantize_per_tensor.default, qd.dequantize_per_channel.default}
QUANTIZE = {qd.quantize_per_tensor.default}
QUANTIZE_CHANNEL = {qd.quantize_per_channel.default}
WEIGHTED = {aten.conv2d.default, aten.linear.default}
CLAMPS = {aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default}
ADDS = {aten.add.Tensor, aten.add_.Tensor}


@dataclass(frozen=True)
class _Dequantized:
    """An integer tensor and its quantization: the input of a dequantize node."""

    q: torch.Tensor
    scale: torch.Tensor  # float32, scalar or per channel
    zero_point: torch.Tensor  # int64, scalar or per channel


@dataclass(frozen=True)
class _Accumulator:
    """The exact int32 accumulator of a conv/linear, with the scales that requantize it."""

    acc: torch.Tensor  # int64
    in_scale: torch.Tensor  # float32 scalar
    w_scale: torch.Tensor  # float32, per output channel
    lo: float | None = None  # a ReLU/ReLU6 applied before the output quantization
    hi: float | None = None


def _f32(v: object) -> torch.Tensor:
    """A scale as the float32 the runtime stores (ONNX initializers are float32)."""
    return torch.as_tensor(v, dtype=F64).to(F32)


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add ``a*b + c`` with one rounding (the product of two float32s is exact
    in float64; the sum is rounded once to float64, then to float32: equal to a true FMA except in
    double-rounding cases rarer than 2^-29)."""
    return (a.to(F64) * b.to(F64) + c.to(F64)).to(F32)


class OrtMlasX86:
    """ONNX Runtime's MLAS kernels on x86-64 with FMA (QLinearConv, QLinearAdd, QuantizeLinear)."""

    name = "onnxruntime-mlas-x86"

    @staticmethod
    def requantize(acc: torch.Tensor, in_scale, w_scale, out_scale, zp: int, qmin: int, qmax: int):
        """QLinearConv/QGemm output: ``float(acc) * (sx*sw/sy)`` in float32, clamped, rounded to even."""
        shape = [1, -1] + [1] * (acc.dim() - 2)
        mult = (in_scale * w_scale) / out_scale  # float32, in ORT's order
        mult = mult.reshape(shape) if mult.dim() else mult
        value = torch.clamp(acc.to(F32) * mult, qmin - zp, qmax - zp)
        return torch.round(value) + zp

    @staticmethod
    def add(a: _Dequantized, b: _Dequantized, out_scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        """QLinearAdd (AVX2 kernel): ``fma(a, rA, fma(b, rB, zC - (rA*zA + rB*zB)))`` with FMA contraction."""
        ra, rb = a.scale / out_scale, b.scale / out_scale
        za, zb = a.zero_point.to(F32), b.zero_point.to(F32)
        fixed = _f32(zp) - _fma(ra, za, rb * zb)
        value = _fma(a.q.to(F32), ra, _fma(b.q.to(F32), rb, fixed))
        return torch.clamp(torch.round(value), qmin, qmax)

    @staticmethod
    def quantize(x: torch.Tensor, scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        """QuantizeLinear: ``x / scale`` (a division, not a multiply by 1/scale), rounded to even."""
        return torch.clamp(torch.round(x.to(F32) / scale) + zp, qmin, qmax)

    @staticmethod
    def quantize_constant(w: torch.Tensor, scale, zp, qmin: int, qmax: int) -> torch.Tensor:
        """A weight the converter quantizes (graphs with float weights): ``round(w / scale)`` in float64
        (measured on litert: PT2E's float32 ``w * (1/scale)`` puts 1 of ~1 M weights one step off)."""
        return torch.clamp(torch.round(w.to(F64) / scale.to(F64)) + zp.to(F64), qmin, qmax)


class XnnpackX86(OrtMlasX86):
    """LiteRT's XNNPACK delegate on x86-64: qs8 convolutions with per-channel (qc8w) weights requantize
    like MLAS (float32 scale, round to even); ADD is fixed point: both scale ratios as integer
    multipliers with 20 fractional bits of the larger one, rounding half up."""

    name = "litert-xnnpack-x86"

    @staticmethod
    def add(a: _Dequantized, b: _Dequantized, out_scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        ra, rb = a.scale / out_scale, b.scale / out_scale  # float32, as XNNPACK computes them
        exponent = int(torch.frexp(torch.maximum(ra.abs(), rb.abs())).exponent) - 1
        shift = 20 - exponent
        ma, mb = (int(torch.round(r.to(F64) * 2.0**shift)) for r in (ra, rb))
        acc = (a.q.to(torch.int64) - a.zero_point) * ma + (b.q.to(torch.int64) - b.zero_point) * mb
        return torch.clamp(((acc + (1 << (shift - 1))) >> shift) + zp, qmin, qmax)


ARITHMETIC = {k.name: k for k in (OrtMlasX86, XnnpackX86)}


class _IntegerInterpreter(Interpreter):
    """Runs a converted graph; conv/linear/add chains between dequantize and quantize in integers."""

    def __init__(self, gm: GraphModule, arithmetic: type[OrtMlasX86]):
        super().__init__(gm)
        self.arithmetic = arithmetic
        self.facts: dict[Node, _Dequantized | _Accumulator] = {}

    def run_node(self, n: Node):
        if n.op != "call_function":
            return super().run_node(n)
        args, _ = self.fetch_args_kwargs_from_env(n)
        if n.target in DEQUANTIZE:
            self._note_dequantized(n, args)
        elif n.target in WEIGHTED:
            if self._note_accumulator(n, args) and _only_requantized(n):
                return self._accumulator_value(self.facts[n])  # no float32 conv: nothing reads it
        elif n.target in CLAMPS:
            self._note_clamp(n, args)
        elif n.target in QUANTIZE_CHANNEL or (n.target in QUANTIZE and _is_constant(n.args[0])):
            return _quantize_constant(n, args, self.arithmetic)
        elif n.target in QUANTIZE:
            return self._quantize(n, args)
        return super().run_node(n)

    def _note_dequantized(self, n: Node, args: tuple) -> None:
        q, scale, zp = args[0], args[1], args[2]
        self.facts[n] = _Dequantized(q, _f32(scale), torch.as_tensor(zp).to(torch.int64))

    def _note_accumulator(self, n: Node, args: tuple) -> bool:
        """Record the exact accumulator of a conv/linear on integer operands; False when they are not."""
        x, w = self.facts.get(n.args[0]), self.facts.get(n.args[1])
        bias_node = n.args[2] if len(n.args) > 2 else None
        bias = self.facts.get(bias_node) if isinstance(bias_node, Node) else None
        if not (isinstance(x, _Dequantized) and isinstance(w, _Dequantized) and x.scale.dim() == 0):
            return False
        xi = (x.q.to(torch.int64) - x.zero_point).to(F64)
        wzp = w.zero_point.reshape(-1, *[1] * (w.q.dim() - 1)) if w.zero_point.dim() else w.zero_point
        wi = (w.q.to(torch.int64) - wzp).to(F64)
        if isinstance(bias, _Dequantized):
            b = bias.q.to(F64)
        elif bias_node is not None:  # a float bias: converters round it to int32 accumulator units,
            # the quotient in float64 (litert/TFLite; measured: float32 gives ties on the wrong side)
            b = torch.round(args[2].to(F64) / (x.scale.to(F64) * w.scale.to(F64)))
        else:
            b = None
        if n.target == aten.conv2d.default:
            acc = torch.nn.functional.conv2d(xi, wi, b, *args[3:])
        else:
            acc = torch.nn.functional.linear(xi, wi, b)
        self.facts[n] = _Accumulator(acc.round().to(torch.int64), x.scale, w.scale)
        return True

    @staticmethod
    def _accumulator_value(fact: _Accumulator) -> torch.Tensor:
        """``acc * (sx*sw)``: a stand-in for the float conv output where only quantizes (which use
        the accumulator) and clamps feeding them read it, so the float32 conv need not run."""
        shape = [1, -1] + [1] * (fact.acc.dim() - 2)
        scale = fact.in_scale * fact.w_scale
        return fact.acc.to(F32) * (scale.reshape(shape) if scale.dim() else scale)

    def _note_clamp(self, n: Node, args: tuple) -> None:
        src = self.facts.get(n.args[0])
        if not isinstance(src, _Accumulator):
            return
        relu = n.target in (aten.relu.default, aten.relu_.default)
        lo, hi = (0.0, None) if relu else (float(args[1]), float(args[2]))
        self.facts[n] = _Accumulator(src.acc, src.in_scale, src.w_scale, lo, hi)

    def _quantize(self, n: Node, args: tuple) -> torch.Tensor:
        scale, zp, qmin, qmax, dtype = _f32(args[1]), int(args[2]), int(args[3]), int(args[4]), args[5]
        src = self.facts.get(n.args[0])
        if isinstance(src, _Accumulator):
            q = self.arithmetic.requantize(src.acc, src.in_scale, src.w_scale, scale, zp, qmin, qmax)
            q = _clamp_activation(q, src, scale, zp)
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


def _clamp_activation(q: torch.Tensor, src: _Accumulator, scale: torch.Tensor, zp: int) -> torch.Tensor:
    """``quantize(clamp(v, lo, hi)) == clamp(quantize(v), quantize(lo), quantize(hi))``: rounding is
    monotone, so a ReLU/ReLU6 before the output quantization is a clamp of the integer result."""
    if src.lo is not None:
        q = torch.clamp(q, min=float(torch.round(_f32(src.lo) / scale)) + zp)
    if src.hi is not None:
        q = torch.clamp(q, max=float(torch.round(_f32(src.hi) / scale)) + zp)
    return q


class IntegerReference(nn.Module):
    """A converted PT2E model evaluated with a runtime's integer arithmetic (see the module docstring).

    The graph is held outside the module tree: converted graphs refuse ``.train()``/``.eval()``.
    """

    def __init__(self, converted: GraphModule, arithmetic: str):
        super().__init__()
        if arithmetic not in ARITHMETIC:
            raise ValueError(f"unknown integer arithmetic '{arithmetic}' (known: {sorted(ARITHMETIC)})")
        object.__setattr__(self, "graph_module", converted)
        self.arithmetic = ARITHMETIC[arithmetic]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _IntegerInterpreter(self.graph_module, self.arithmetic).run(x.contiguous())


def host_supports(reference: str) -> bool:
    """Whether this machine runs the kernels the reference mirrors (MLAS x86 needs an x86-64 CPU)."""
    if reference in ARITHMETIC:  # every arithmetic here mirrors x86-64 kernels
        return platform.machine().lower() in ("x86_64", "amd64")
    return True


def parity_reference(converted: GraphModule, reference: str) -> nn.Module:
    """The model parity is checked against: the converted model itself for ``float``, else its integer
    twin (falls back to the float model where this host does not run the mirrored kernels)."""
    if reference == "float" or not host_supports(reference):
        return converted
    return IntegerReference(converted, reference)
