"""How each runtime computes an int8 network, step for step: the rules :mod:`integer_reference` applies.

One class per runtime kernel family (ONNX Runtime's MLAS, LiteRT's XNNPACK, OpenVINO's CPU plugin, all
on x86-64). Each answers the same questions for the interpreter: which scale a dequantized tensor
carries into a convolution, how an int32 accumulator becomes the next int8 tensor, how a residual add
and a plain quantize round, and which int8 values a float weight folds to. Every rule here was matched
element for element against the runtime's own outputs (tests in ``tests/quant/test_integer_reference.py``,
findings and the one known OpenVINO residual in docs/convert.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

F32, F64 = torch.float32, torch.float64


class UnsupportedPattern(ValueError):
    """The graph holds an op pattern whose runtime arithmetic this module does not reproduce."""


@dataclass(frozen=True)
class _Accumulator:
    """The exact int32 accumulator of a conv/linear, with the scales that requantize it."""

    acc: torch.Tensor  # int64
    in_scale: torch.Tensor  # float32 scalar
    w_scale: torch.Tensor  # float32, per output channel
    lo: float | None = None  # a ReLU/ReLU6 applied before the output quantization
    hi: float | None = None
    bias: torch.Tensor | None = None  # float32, when the runtime adds the bias in float (OpenVINO)

    def value(self) -> torch.Tensor:
        """``float32(acc) * (sx*sw) [+ bias]``, two roundings: the conv output in float, as the runtime
        (OpenVINO) or a stand-in for a float conv nobody else reads (ORT/XNNPACK: bias inside acc)."""
        shape = [1, -1] + [1] * (self.acc.dim() - 2)
        scale = self.in_scale * self.w_scale
        out = self.acc.to(F32) * (scale.reshape(shape) if scale.dim() else scale)
        return out if self.bias is None else out + self.bias.reshape(shape)

    def clamped(self) -> torch.Tensor:
        out = self.value()
        if self.lo is not None:
            out = torch.clamp(out, min=self.lo)
        if self.hi is not None:
            out = torch.clamp(out, max=self.hi)
        return out


@dataclass(frozen=True)
class _Dequantized:
    """An integer tensor and its quantization: the input of a dequantize node."""

    q: torch.Tensor
    scale: torch.Tensor  # float32, scalar or per channel (as PT2E stores it)
    zero_point: torch.Tensor  # int64, scalar or per channel
    quant_min: int = 0
    quant_max: int = 255
    # the conv/linear it was requantized from, when this dequantize is that quantize's only reader and
    # an add is its only reader (the residual branch OpenVINO fuses into the conv)
    branch: _Accumulator | None = None


def _f32(v: object) -> torch.Tensor:
    """A scale as the float32 the runtime stores (ONNX initializers are float32)."""
    return torch.as_tensor(v, dtype=F64).to(F32)


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add ``a*b + c`` with one rounding (the product of two float32s is exact
    in float64; the sum is rounded once to float64, then to float32: equal to a true FMA except in
    double-rounding cases rarer than 2^-29)."""
    return (a.to(F64) * b.to(F64) + c.to(F64)).to(F32)


def _clamp_activation(q: torch.Tensor, src: _Accumulator, scale: torch.Tensor, zp: int) -> torch.Tensor:
    """``quantize(clamp(v, lo, hi)) == clamp(quantize(v), quantize(lo), quantize(hi))``: rounding is
    monotone, so a ReLU/ReLU6 before the output quantization is a clamp of the integer result."""
    if src.lo is not None:
        q = torch.clamp(q, min=float(torch.round(_f32(src.lo) / scale)) + zp)
    if src.hi is not None:
        q = torch.clamp(q, max=float(torch.round(_f32(src.hi) / scale)) + zp)
    return q


INT16_MIN, INT16_MAX = -32768, 32767
ACTIVATION_MAX = 255  # raw u8 activations enter the pairs


def pair_saturated_accumulator(
    x: _Dequantized,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    linear: bool,
    conv_args: tuple,
    *,
    pairs_span_taps: bool,
) -> torch.Tensor:
    """The int32 accumulator of a conv/linear whose u8×s8 products are added two by two into a saturating
    int16 (x86 without VNNI: ``VPMADDUBSW``), then summed exactly (``VPMADDWD`` with ones, ``VPADDD``).

    Both kernel families multiply the *raw* u8 activations (padding holds the zero point) with the
    reduction axis in (kh, kw, ic) order and remove the zero point afterwards as the exact ``zp·Σw``;
    depthwise convs widen to 32 bits and are exact. They differ where a tap's channel count is odd (the
    3-channel stem): MLAS (``ConvSymKernelAvx2``, im2col + ``QgemmU8X8KernelAvx2``) pairs the flattened
    axis, so a pair can span two taps (``pairs_span_taps``); oneDNN (``jit_uni_x8s8s32x_conv_kernel``,
    ``OIhw2i8o4i`` weights) zero-pads the channels of each tap. Both matched on MobileFaceNet under QEMU
    Haswell (docs/convert.md). Integers below 2^24 are exact in float32.
    """
    q, zp = x.q.to(F32), float(x.zero_point)
    if linear:
        q, w, conv_args = q[:, :, None, None], w[:, :, None, None], ()
    stride, padding, dilation, groups = (list(conv_args) + [1, 0, 1, 1][len(conv_args) :])[:4]
    cout, cin_g, kh, kw = w.shape
    if groups != 1 and cin_g == 1:  # depthwise: exact
        exact = torch.nn.functional.conv2d(q.to(F64) - zp, w, bias, stride, padding, dilation, groups)
        return exact.round().to(torch.int64)
    (sh, sw), (ph, pw), dil = _pair(stride), _pair(padding), _pair(dilation)
    q = torch.nn.functional.pad(q, (pw, pw, ph, ph), value=zp)
    cols = torch.nn.functional.unfold(q, (kh, kw), dilation=dil, stride=(sh, sw))
    n, length, out_g = cols.shape[0], cols.shape[2], cout // groups
    cols = cols.view(n, groups, cin_g, kh * kw, length).transpose(2, 3)  # (n, g, tap, ic, L)
    wk = w.to(F32).permute(0, 2, 3, 1)  # (cout, kh, kw, ic)
    if cin_g % 2 and not pairs_span_taps:  # a zero channel closes each tap
        cols = torch.nn.functional.pad(cols, (0, 0, 0, 1))
        wk = torch.nn.functional.pad(wk, (0, 1))
    wk = wk.reshape(cout, -1)
    acc = torch.cat(
        [
            _pair_sums(cols[:, g].reshape(n, -1, length), wk[g * out_g : (g + 1) * out_g])
            for g in range(groups)
        ],
        1,
    )
    acc -= zp * wk.to(F64).sum(1)[None, :, None]
    if bias is not None:
        acc += bias.to(F64)[None, :, None]
    out_h = (q.shape[2] - dil[0] * (kh - 1) - 1) // sh + 1
    acc = acc.view(n, cout) if linear else acc.view(n, cout, out_h, -1)
    return acc.round().to(torch.int64)


def _pair_sums(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``Σ_m sat16(a[2m]·w[2m] + a[2m+1]·w[2m+1])`` over K: ``a`` (N, K, L) raw u8, ``w`` (O, K) s8.

    The exact sum, then a correction for the pairs that can leave int16 at all: same-sign weights with
    ``|w0| + |w1| ≥ 129`` (``255·128 < 32767``), usually a small share of a layer's pairs."""
    if a.shape[1] % 2:
        a, w = torch.nn.functional.pad(a, (0, 0, 0, 1)), torch.nn.functional.pad(w, (0, 1))
    acc = torch.einsum("ok,nkl->nol", w.to(F64), a.to(F64))
    w0, w1 = w[:, 0::2], w[:, 1::2]
    outs, pairs = torch.nonzero(
        (w0 * w1 > 0) & (w0.abs() + w1.abs() > INT16_MAX // ACTIVATION_MAX), as_tuple=True
    )
    a0, a1 = a[:, 0::2], a[:, 1::2]  # (N, K/2, L)
    chunk = max(1, 2**24 // max(1, a.shape[0] * a.shape[2]))
    for r in range(0, len(outs), chunk):
        o, m = outs[r : r + chunk], pairs[r : r + chunk]
        p = a0[:, m] * w0[o, m][None, :, None] + a1[:, m] * w1[o, m][None, :, None]  # (N, R, L)
        acc.index_add_(1, o, (p.clamp(INT16_MIN, INT16_MAX) - p).to(F64))
    return acc


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[-1]))


class OrtMlasX86:
    """ONNX Runtime's MLAS kernels on x86-64 with FMA (QLinearConv, QLinearAdd, QuantizeLinear)."""

    name = "onnxruntime-mlas-x86"
    runtime = "onnxruntime"
    # the accumulator on x86 without VNNI (edgekd.isa): u8×s8 pairs in saturating int16
    pair_saturated = staticmethod(functools.partial(pair_saturated_accumulator, pairs_span_taps=True))
    float_bias = False  # the bias is rounded to int32 accumulator units
    float_output_gemm = True  # DQ → Gemm without a Q after it runs as QGemm (integer sum, float out)
    quantized_adds_only = False  # a float add (unquantized input) runs as the converted model's

    @staticmethod
    def dequant_scale(d: _Dequantized) -> torch.Tensor:
        """The scale a dequantized tensor carries into a convolution: the stored one."""
        return d.scale

    @classmethod
    def requantize(cls, fact: _Accumulator, out_scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        """QLinearConv/QGemm output: ``float(acc) * (sx*sw/sy)`` in float32, clamped, rounded to even."""
        acc = fact.acc
        shape = [1, -1] + [1] * (acc.dim() - 2)
        mult = (fact.in_scale * fact.w_scale) / out_scale  # float32, in ORT's order
        mult = mult.reshape(shape) if mult.dim() else mult
        value = torch.clamp(acc.to(F32) * mult, qmin - zp, qmax - zp)
        return _clamp_activation(torch.round(value) + zp, fact, out_scale, zp)

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
    runtime = "litert"
    float_output_gemm = False  # not checked against this runtime: a float linear stays float

    @staticmethod
    def add(a: _Dequantized, b: _Dequantized, out_scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        ra, rb = a.scale / out_scale, b.scale / out_scale  # float32, as XNNPACK computes them
        exponent = int(torch.frexp(torch.maximum(ra.abs(), rb.abs())).exponent) - 1
        shift = 20 - exponent
        ma, mb = (int(torch.round(r.to(F64) * 2.0**shift)) for r in (ra, rb))
        acc = (a.q.to(torch.int64) - a.zero_point) * ma + (b.q.to(torch.int64) - b.zero_point) * mb
        return torch.clamp(((acc + (1 << (shift - 1))) >> shift) + zp, qmin, qmax)


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=F32)


def _fq_ranges(scale, zp, qmin: int, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A quantize node's FakeQuantize interval in the IR: ``(qmin - zp)·s, (qmax - zp)·s`` in float32."""
    s, z = torch.as_tensor(scale).to(F32), torch.as_tensor(zp).to(F32)
    return (_t(qmin) - z) * s, (_t(qmax) - z) * s


def _fq_input_scale_shift(lo, hi, levels: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU plugin's FakeQuantize constants: ``isc = (L-1)/(hi-lo)``, ``ish = -lo·(L-1)/(hi-lo)``
    (float32, in this order: ``-lo·isc`` differs by an ulp and flips ties). Tensor / tensor on purpose:
    torch computes ``float / tensor`` as ``reciprocal(tensor) * float``, another rounding."""
    span = hi - lo
    return _t(levels) / span, (-lo * levels) / span


def _lpt_dequantization(lo, hi) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-precision transformations' FakeQuantize → u8 decomposition: ``scale = (hi-lo)/255``,
    ``shift = (0·hi - 255·lo)/(hi-lo)`` (float32; the shift is the zero point plus a rounding error)."""
    return (hi - lo) / _t(255.0), (_t(0.0) * hi - _t(255.0) * lo) / (hi - lo)


class OpenVinoCpuX86(OrtMlasX86):
    """OpenVINO's CPU plugin (oneDNN) on x86-64, IR converted from the PT2E ExportedProgram.

    Every quantize node is a FakeQuantize with interval ``[(qmin-zp)·s, (qmax-zp)·s]``; weights are
    folded by FakeQuantize's formula and dequantize with ``(hi-lo)/255``, activations likewise. A conv
    computes ``float32(acc) * (sx·sw) + b`` (float bias), then its FakeQuantize as
    ``round_even(fma(v, isc, ish))``. A residual add whose one branch is a conv's own quantized output
    is fused into that conv (oneDNN sum post-op) after the low-precision transformations rewrote it, and
    OpenVINO drops that branch's rounding ("drop rounding one special residual pattern"): see :meth:`add`.
    """

    name = "openvino-cpu-x86"
    runtime = "openvino"
    float_output_gemm = False  # not checked against this runtime: a float linear stays float
    pair_saturated = staticmethod(functools.partial(pair_saturated_accumulator, pairs_span_taps=False))
    float_bias = True
    quantized_adds_only = True  # a conv → add edge in float runs as a JIT subgraph not reproduced here

    @staticmethod
    def dequant_scale(d: _Dequantized) -> torch.Tensor:
        """``(hi - lo) / (qmax - qmin)`` of the FakeQuantize interval, not always the stored float32 s."""
        lo, hi = _fq_ranges(d.scale, d.zero_point, d.quant_min, d.quant_max)
        return (hi - lo) / _t(float(d.quant_max - d.quant_min))

    @classmethod
    def requantize(cls, fact: _Accumulator, out_scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        return cls.quantize(fact.clamped(), out_scale, zp, qmin, qmax)

    @staticmethod
    def quantize(x: torch.Tensor, scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        """FakeQuantize with an integer output: ``round_even(fma(clamp(x, lo, hi), isc, ish))``."""
        lo, hi = _fq_ranges(scale, zp, qmin, qmax)
        isc, ish = _fq_input_scale_shift(lo, hi, float(qmax - qmin))
        value = _fma(torch.clamp(x.to(F32), lo, hi), isc, ish)
        return torch.clamp(torch.round(value) + qmin, qmin, qmax)

    @staticmethod
    def quantize_constant(w: torch.Tensor, scale, zp, qmin: int, qmax: int) -> torch.Tensor:
        """The converter's weight folding: ``round_even((w - lo) / (hi - lo) · 255) + qmin`` in float32
        (benchmarks/openvino_weights.py: 0 of 980,096 MobileFaceNet weights differ)."""
        lo, hi = _fq_ranges(scale, zp, qmin, qmax)
        value = (w.to(F32) - lo) / (hi - lo) * _t(float(qmax - qmin))
        return torch.clamp(torch.round(value) + qmin, qmin, qmax)

    @staticmethod
    def add(a: _Dequantized, b: _Dequantized, out_scale, zp: int, qmin: int, qmax: int) -> torch.Tensor:
        """conv → FakeQuantize(1) → Add(skip) → FakeQuantize(2), fused into one int8 convolution.

        The low-precision AddTransformation rewrites ``SC1·(X1 - SH1) + SC2·(X2 - SH2)`` as
        ``SC2·(SC1'·(X1 - SH1') + X2)`` with ``SC1' = SC1/SC2``, ``SH1' = SH1 + SH2·SC2/SC1``, folds
        ``(· - SH1')·SC1'`` into FakeQuantize(1)'s output interval and ``SC2`` into FakeQuantize(2)'s
        input interval. The plugin then merges FakeQuantize(1) without its rounding into one linear op
        on the conv output and adds the raw skip integers (sum post-op, scale 1). Every constant is
        float32, folded in the order written here.
        """
        branches = [d for d in (a, b) if d.branch is not None]
        if len(branches) != 1:
            raise UnsupportedPattern("an OpenVINO residual add needs exactly one conv branch to fuse")
        conv = branches[0]
        skip = b if conv is a else a
        lo1, hi1 = _fq_ranges(conv.scale, conv.zero_point, conv.quant_min, conv.quant_max)
        lo2, hi2 = _fq_ranges(skip.scale, skip.zero_point, skip.quant_min, skip.quant_max)
        sc1, sh1 = _lpt_dequantization(lo1, hi1)
        sc2, sh2 = _lpt_dequantization(lo2, hi2)
        sh1p, sc1p = sh1 + (sh2 * sc2) / sc1, sc1 / sc2
        out_lo, out_hi = (_t(0.0) - sh1p) * sc1p, (_t(255.0) - sh1p) * sc1p
        isc1, ish1 = _fq_input_scale_shift(lo1, hi1, 255.0)
        osc1 = (out_hi - out_lo) / _t(255.0)
        crop = [torch.round(edge * isc1 + ish1) * osc1 + out_lo for edge in (lo1, hi1)]
        merged = _fma(conv.branch.clamped(), isc1 * osc1, ish1 * osc1 + out_lo)
        y = torch.clamp(merged, min(crop), max(crop)) + skip.q.to(F32)
        lo3, hi3 = _fq_ranges(out_scale, zp, qmin, qmax)
        isc3, ish3 = _fq_input_scale_shift(lo3 / sc2, hi3 / sc2, float(qmax - qmin))
        return torch.clamp(torch.round(_fma(y, isc3, ish3)) + qmin, qmin, qmax)


ARITHMETIC = {k.name: k for k in (OrtMlasX86, XnnpackX86, OpenVinoCpuX86)}
