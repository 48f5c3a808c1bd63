"""Roofline latency estimate from an artifact's own op list and a profile's peaks: an *estimate*.

Each executed op costs ``max(2·MACs / (peak_ops · efficiency), bytes / bandwidth) + overhead``:

* ``MACs`` of Conv / ConvTranspose / Gemm / MatMul (and their QLinear*/…Integer forms) are
  ``numel(output) × K`` with ``K`` the reduction length (``C/groups·kh·kw`` for a convolution);
* ``bytes`` are every input (activations and weights) plus every output, at the element size the runtime
  reads: 1 byte for int8 tensors, 4 for float32 (caches are ignored, so this is an upper bound);
* ``peak_ops`` is the profile unit's fp32 or int8 peak, ``efficiency`` the fraction of it that real
  kernels reach and ``overhead`` the fixed cost per op (dispatch, thread sync), both calibrated against
  published MobileNet latencies (docs/profiles.md, :mod:`edgekd.bench.calibration`).

What runtimes fuse is not counted twice: BatchNorm / ReLU / Clip / … directly after a convolution are
*fused* (no time, no overhead); shape ops (Reshape, Flatten, …) and Quantize/DequantizeLinear are *free*.
An op is int8 when it is a QLinear*/…Integer op or sits in a QDQ sandwich (every activation input from a
DequantizeLinear, int8 weights); int8 weights dequantized into a float op ("weight-only" int8, like the
published ``*_int8bq.onnx`` SFace) are counted as float32, as runtimes fold them back to float at load.

>>> ops = onnx_ops("model.onnx")  # doctest: +SKIP
>>> estimate(ops, load_profile("rpi4").cpu).latency_ms  # doctest: +SKIP
12.3
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import onnx
from onnx import TensorProto

from edgekd.bench.profiles import ComputeUnit
from edgekd.errors import ModelError

CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op → index of the weight input
MATMUL_OPS = {"MatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3, "Gemm": 1}
QUANT_NATIVE = {"ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul"}
# ops a runtime folds into the preceding convolution / matmul (ORT's and XNNPACK's fusions)
FUSABLE = {"BatchNormalization", "Relu", "Clip", "LeakyRelu", "HardSigmoid", "Sigmoid", "Tanh"}
# elementwise ops with a constant operand directly after a matmul (bias / scale): folded too
FUSABLE_WITH_CONSTANT = {"Add", "Mul", "Sub", "Div"}
FREE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Constant", "Shape"}
QDQ = {"QuantizeLinear", "DequantizeLinear"}
EIGHT_BIT = {TensorProto.INT8, TensorProto.UINT8}

Kind = Literal["compute", "memory", "fused", "free"]


@dataclass(frozen=True)
class OpCost:
    """One node: its work (``macs``), traffic (``bytes``), precision and how a runtime executes it."""

    name: str
    op_type: str
    kind: Kind
    precision: Literal["fp32", "int8"]
    macs: int = 0
    bytes: int = 0
    weight_only_int8: bool = False


@dataclass(frozen=True)
class Estimate:
    """Estimated latency of one inference at ``batch`` on one compute unit, with its three terms."""

    unit: str
    batch: int
    latency_ms: float
    compute_bound_ms: float  # sum over ops limited by compute
    memory_bound_ms: float  # sum over ops limited by bandwidth
    overhead_ms: float
    executed_ops: int
    macs: int
    int8_macs: int
    bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def op_seconds(op: OpCost, unit: ComputeUnit) -> tuple[float, float, float]:
    """(compute, memory, overhead) seconds of one op; only the larger of the first two counts."""
    if op.kind in ("fused", "free"):
        return 0.0, 0.0, 0.0
    if op.precision == "int8":
        peak = unit.int8_gops * unit.int8_efficiency
    else:
        peak = unit.fp32_gops * unit.fp32_efficiency
    return 2 * op.macs / (peak * 1e9), op.bytes / (unit.memory_gbs * 1e9), unit.overhead_us * 1e-6


def estimate(ops: list[OpCost], unit: ComputeUnit, batch: int = 1, name: str = "cpu") -> Estimate:
    """Sum the per-op roofline times of ``ops`` on ``unit``."""
    compute_s = memory_s = overhead_s = 0.0
    executed = 0
    for op in ops:
        c, m, o = op_seconds(op, unit)
        if op.kind in ("compute", "memory"):
            executed += 1
            if c >= m:
                compute_s += c
            else:
                memory_s += m
            overhead_s += o
    notes = []
    weight_only = sum(1 for op in ops if op.weight_only_int8)
    if weight_only:
        notes.append(f"{weight_only} ops have int8 weights but float activations: counted as fp32")
    total = compute_s + memory_s + overhead_s
    return Estimate(
        unit=name,
        batch=batch,
        latency_ms=1e3 * total,
        compute_bound_ms=1e3 * compute_s,
        memory_bound_ms=1e3 * memory_s,
        overhead_ms=1e3 * overhead_s,
        executed_ops=executed,
        macs=sum(op.macs for op in ops),
        int8_macs=sum(op.macs for op in ops if op.precision == "int8"),
        bytes=sum(op.bytes for op in ops if op.kind in ("compute", "memory")),
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------------
# ONNX op list


def _dtype_size(elem_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 4


def _with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy whose symbolic (or fixed) batch dimension is ``batch`` on every graph input and output."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    initializers = {t.name for t in out.graph.initializer}
    del out.graph.value_info[:]
    for value in [*out.graph.input, *out.graph.output]:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) > 0:
            dims[0].Clear()
            dims[0].dim_value = batch
    return out


def _tensor_info(model: onnx.ModelProto) -> dict[str, tuple[tuple[int, ...] | None, int]]:
    """name → (shape or None when unknown/symbolic, elem_type) for every tensor of the main graph."""
    info: dict[str, tuple[tuple[int, ...] | None, int]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        t = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        known = t.HasField("shape") and all(d > 0 for d in dims)
        info[value.name] = (dims if known else None, t.elem_type)
    for init in graph.initializer:
        info[init.name] = (tuple(init.dims), init.data_type)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t is not None:
                    info[node.output[0]] = (tuple(attr.t.dims), attr.t.data_type)
    return info


def onnx_ops(model: str | Path | onnx.ModelProto, batch: int = 1) -> list[OpCost]:
    """The op list of an ONNX model at ``batch``: MACs, bytes, precision and kind per node."""
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model), load_external_data=False)
        except Exception as exc:
            raise ModelError(f"{model} is not a readable ONNX model: {exc}") from exc
    try:
        inferred = onnx.shape_inference.infer_shapes(_with_batch(model, batch), data_prop=True)
    except Exception as exc:  # shape inference failing leaves shapes unknown; ops are then skipped
        raise ModelError(f"ONNX shape inference failed, no roofline estimate: {exc}") from exc
    graph = inferred.graph
    info = _tensor_info(inferred)
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    constant = {t.name for t in graph.initializer}
    constant |= {n.output[0] for n in graph.node if n.op_type == "Constant"}
    weight_dq: dict[str, str] = {}  # DequantizeLinear output of a constant → its quantized source
    activation_dq: dict[str, str] = {}  # DequantizeLinear output of an activation → its source
    dq_node: dict[str, int] = {}  # dequantized weight (or a reshape of it) → index of its DequantizeLinear
    for index, node in enumerate(graph.node):  # topological order: constants propagate forwards
        if node.op_type == "DequantizeLinear":
            (activation_dq, weight_dq)[node.input[0] in constant][node.output[0]] = node.input[0]
            if node.input[0] in constant:
                constant.add(node.output[0])
                dq_node[node.output[0]] = index
        elif node.op_type in FREE and node.input and all(i in constant for i in node.input if i):
            constant.update(node.output)
            if node.input[0] in weight_dq:  # a reshaped block-quantized weight is still int8 on disk
                weight_dq[node.output[0]] = weight_dq[node.input[0]]
                dq_node[node.output[0]] = dq_node[node.input[0]]
        elif node.op_type in FREE and node.input and node.input[0] in activation_dq:
            activation_dq[node.output[0]] = activation_dq[node.input[0]]  # flatten of an int8 tensor

    def numel(name: str) -> int | None:
        shape = info.get(name, (None, 0))[0]
        return math.prod(shape) if shape is not None else None

    def elem_size(name: str) -> int:
        return _dtype_size(info.get(name, (None, TensorProto.FLOAT))[1])

    def is_int8_weight(name: str) -> bool:
        source = weight_dq.get(name)
        return source is not None and info.get(source, (None, 0))[1] in EIGHT_BIT

    def ends_in_q(tensor: str) -> bool:
        """Quantized on its way out: read by QuantizeLinear only, or via a fused activation that is."""
        users = consumers[tensor]
        if users and all(c.op_type == "QuantizeLinear" for c in users):
            return True
        return len(users) == 1 and users[0].op_type in FUSABLE and ends_in_q(users[0].output[0])

    def quantized_region(node: onnx.NodeProto) -> bool:
        """Every activation input comes from a DequantizeLinear and every output goes to QuantizeLinear."""
        acts = [i for i in node.input if i and i not in constant]
        return bool(acts) and all(i in activation_dq for i in acts) and all(ends_in_q(o) for o in node.output)

    costs: list[OpCost] = []
    fused_into_compute: set[str] = set()  # outputs of compute ops (and of ops fused into them)
    executed_dq: set[int] = set()  # weight DequantizeLinear nodes a float op needs at every inference
    for node in graph.node:
        name = node.name or f"{node.op_type}_{len(costs)}"
        op = node.op_type
        acts = [i for i in node.input if i and i not in constant]
        if op in FREE or op in QDQ or not acts:
            costs.append(OpCost(name, op, "free", "fp32"))
            if acts and acts[0] in fused_into_compute and op in FREE:
                fused_into_compute.update(node.output)  # a reshape between conv and activation
            continue
        single_use = acts[0] in fused_into_compute and len(consumers[acts[0]]) == 1
        if single_use and (
            op in FUSABLE or (op in FUSABLE_WITH_CONSTANT and len(acts) == 1 and len(node.input) == 2)
        ):
            costs.append(OpCost(name, op, "fused", "fp32"))
            fused_into_compute.update(node.output)
            continue

        if op in CONV_OPS or op in MATMUL_OPS:
            weight = node.input[CONV_OPS.get(op, MATMUL_OPS.get(op, 1))]
            data_int8 = node.input[0] in activation_dq
            weight_int8 = is_int8_weight(weight) or weight in activation_dq  # (activation @ activation)
            int8 = op in QUANT_NATIVE or (data_int8 and weight_int8)
            weight_only = not int8 and is_int8_weight(weight)
        else:
            int8 = op in QUANT_NATIVE or quantized_region(node)
            weight_only = False

        total = 0
        unknown = False
        for tensor in node.input:
            if not tensor:
                continue
            n = numel(tensor)
            if tensor in activation_dq and int8:
                n, size = numel(activation_dq[tensor]), elem_size(activation_dq[tensor])
            elif tensor in weight_dq:
                size = elem_size(weight_dq[tensor]) if int8 else 4
                n = numel(weight_dq[tensor]) if n is None else n
            else:
                size = elem_size(tensor)
            if n is None:
                unknown = True
                continue
            total += n * size
        for tensor in node.output:
            n = numel(tensor)
            if n is None:
                unknown = True
                continue
            total += n * (1 if int8 and ends_in_q(tensor) else elem_size(tensor))

        macs = 0
        if op in CONV_OPS or op in MATMUL_OPS or op == "ConvTranspose":
            macs = _macs(node, info, weight_dq)
            if macs is None:
                unknown, macs = True, 0
            if weight_only:  # ONNX Runtime dequantizes such weights at every run and cannot fold a
                executed_dq.update(dq_node[i] for i in node.input if i in dq_node)  # BatchNorm into them
            else:
                fused_into_compute.update(node.output)
        kind: Kind = "compute" if macs else "memory"
        costs.append(OpCost(name, op, kind, "int8" if int8 else "fp32", macs, total, weight_only))
        if unknown:
            raise ModelError(
                f"cannot size node {name} ({op}): ONNX shape inference left a shape unknown; "
                "no roofline estimate for this model"
            )
    for index in sorted(executed_dq):  # read int8 (+ scales), write float32
        node = graph.node[index]
        nbytes = (
            sum((numel(i) or 0) * elem_size(i) for i in node.input if i) + (numel(node.input[0]) or 0) * 4
        )
        costs[index] = OpCost(costs[index].name, node.op_type, "memory", "fp32", 0, nbytes)
    return costs


def _macs(node: onnx.NodeProto, info: dict, weight_dq: dict[str, str]) -> int | None:
    """``numel(output) × K`` (K = reduction length); ConvTranspose: ``numel(input) × prod(W[1:])``."""
    op = node.op_type

    def shape(name: str) -> tuple[int, ...] | None:
        found = info.get(name, (None, 0))[0]
        if found is None and name in weight_dq:
            found = info.get(weight_dq[name], (None, 0))[0]
        return found

    out = shape(node.output[0])
    if op == "ConvTranspose":
        x, w = shape(node.input[0]), shape(node.input[1])
        return math.prod(x) * math.prod(w[1:]) if x and w else None
    if op in CONV_OPS:
        w = shape(node.input[CONV_OPS[op]])
        return math.prod(out) * math.prod(w[1:]) if out and w else None
    a = shape(node.input[0])
    if out is None or a is None:
        return None
    if op == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        k = a[0] if trans_a else a[-1]
    else:
        k = a[-1]
    return math.prod(out) * k
