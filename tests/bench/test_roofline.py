"""Roofline op list and estimate against a network small enough to count by hand (one Conv + one Gemm)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekd.bench.profiles import ComputeUnit
from edgekd.bench.roofline import estimate, onnx_ops

# x (N,3,8,8) → Conv 3→4, 3×3, pad 1 → Relu → Flatten (N,256) → Gemm 256→10
CONV_MACS = 4 * 8 * 8 * 3 * 3 * 3  # out channels × out pixels × (in channels × kernel) = 6912
GEMM_MACS = 256 * 10  # 2560
CONV_BYTES = 4 * (3 * 8 * 8 + 4 * 3 * 3 * 3 + 4 + 4 * 8 * 8)  # x + W + bias + y, fp32 = 2240
GEMM_BYTES = 4 * (256 + 10 * 256 + 10 + 10)  # x + W + bias + y = 11344

# 1 Gop/s, 1 GB/s, 10 µs per op, efficiencies 1: times are easy to write down
UNIT = ComputeUnit(
    model="test",
    fp32_gops=1.0,
    int8_gops=4.0,
    memory_gbs=1.0,
    overhead_us=10.0,
    fp32_efficiency=1.0,
    int8_efficiency=1.0,
)


def _init(name: str, shape: list[int], dtype=np.float32):
    return numpy_helper.from_array(np.zeros(shape, dtype), name)


def conv_gemm(batch: int | str = 1, int8: bool = False, weight_only: bool = False) -> onnx.ModelProto:
    inits = [_init("s", []), _init("zp", [], np.int8)]
    nodes = []

    def q(x: str) -> str:  # QuantizeLinear → DequantizeLinear
        if not int8:
            return x
        nodes.append(helper.make_node("QuantizeLinear", [x, "s", "zp"], [x + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [x + "_q", "s", "zp"], [x + "_dq"]))
        return x + "_dq"

    def weight(name: str, shape: list[int], bias: bool = False) -> str:
        if not (int8 or weight_only):
            inits.append(_init(name, shape))
            return name
        dtype = np.int32 if bias else np.int8
        inits.append(_init(name + "_i", shape, dtype))
        zp = "zp32" if bias else "zp"
        if bias and not any(i.name == "zp32" for i in inits):
            inits.append(_init("zp32", [], np.int32))
        nodes.append(helper.make_node("DequantizeLinear", [name + "_i", "s", zp], [name]))
        return name

    x = q("x")
    w, b = weight("W", [4, 3, 3, 3]), weight("B", [4], bias=True)
    nodes.append(helper.make_node("Conv", [x, w, b], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["y"], ["r"]))
    r = q("r")
    nodes.append(helper.make_node("Flatten", [r], ["f"]))
    w2, b2 = weight("W2", [10, 256]), weight("B2", [10], bias=True)
    nodes.append(helper.make_node("Gemm", ["f", w2, b2], ["z"], transB=1))
    z = q("z")
    graph = helper.make_graph(
        nodes,
        "conv_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info(z, TensorProto.FLOAT, [batch, 10])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_op_list_counts_macs_and_bytes_by_hand():
    ops = {op.op_type: op for op in onnx_ops(conv_gemm())}
    assert (ops["Conv"].kind, ops["Conv"].macs, ops["Conv"].bytes) == ("compute", CONV_MACS, CONV_BYTES)
    assert (ops["Gemm"].kind, ops["Gemm"].macs, ops["Gemm"].bytes) == ("compute", GEMM_MACS, GEMM_BYTES)
    assert ops["Relu"].kind == "fused" and ops["Flatten"].kind == "free"
    assert {op.precision for op in ops.values()} == {"fp32"}


def test_estimate_by_hand():
    est = estimate(onnx_ops(conv_gemm()), UNIT)
    conv_us = max(2 * CONV_MACS / 1e3, CONV_BYTES / 1e3)  # 13.824 µs compute-bound
    gemm_us = max(2 * GEMM_MACS / 1e3, GEMM_BYTES / 1e3)  # 11.344 µs memory-bound
    assert est.latency_ms == pytest.approx((conv_us + gemm_us + 2 * 10) / 1e3)
    assert est.compute_bound_ms == pytest.approx(2 * CONV_MACS / 1e6)
    assert est.memory_bound_ms == pytest.approx(GEMM_BYTES / 1e6)
    assert est.overhead_ms == pytest.approx(0.02)
    assert (est.executed_ops, est.macs, est.int8_macs) == (2, CONV_MACS + GEMM_MACS, 0)


def test_batch_scales_activations_not_weights():
    ops = {op.op_type: op for op in onnx_ops(conv_gemm(batch="N"), batch=2)}
    assert ops["Conv"].macs == 2 * CONV_MACS
    assert ops["Conv"].bytes == 4 * (2 * 3 * 64 + 108 + 4 + 2 * 256)
    assert ops["Gemm"].bytes == 4 * (2 * 256 + 2560 + 10 + 2 * 10)


def test_qdq_sandwich_counts_as_int8_with_one_byte_tensors():
    ops = {op.op_type: op for op in onnx_ops(conv_gemm(int8=True))}
    conv, gemm = ops["Conv"], ops["Gemm"]
    assert conv.precision == gemm.precision == "int8"
    assert conv.bytes == 3 * 64 + 108 + 4 * 4 + 256  # int8 x, W, y; int32 bias
    assert gemm.bytes == 256 + 2560 + 4 * 10 + 10
    est = estimate(list(ops.values()), UNIT)
    assert est.int8_macs == CONV_MACS + GEMM_MACS
    assert est.compute_bound_ms == pytest.approx(2 * CONV_MACS / 4e6)  # int8 peak is 4 Gop/s
    q_ops = [
        op for op in onnx_ops(conv_gemm(int8=True)) if op.op_type in ("QuantizeLinear", "DequantizeLinear")
    ]
    assert q_ops and all(op.kind == "free" for op in q_ops)


def test_weight_only_int8_is_counted_as_float_plus_dequantization():
    """As ONNX Runtime runs it: float compute, every weight dequantized at every run, BatchNorm/ReLU not
    folded into a convolution whose weights are computed."""
    ops = onnx_ops(conv_gemm(weight_only=True))
    conv = next(op for op in ops if op.op_type == "Conv")
    assert conv.precision == "fp32" and conv.weight_only_int8
    assert conv.bytes == CONV_BYTES  # reads the float32 weights the DequantizeLinear wrote
    dq = {op.name: op for op in ops if op.op_type == "DequantizeLinear"}
    assert all(op.kind == "memory" for op in dq.values()) and len(dq) == 4  # W, B, W2, B2
    assert sorted(op.bytes for op in dq.values())[:2] == [
        4 * 4 + 4 + 4 + 4 * 4,  # conv bias: int32 in, scale, zero point, float out = 40
        10 * 4 + 4 + 4 + 10 * 4,  # gemm bias = 88
    ]
    w = 108 + 4 + 1 + 108 * 4  # conv weight: int8 in, scale, zero point, float out = 545
    assert w in [op.bytes for op in dq.values()]
    assert next(op for op in ops if op.op_type == "Relu").kind == "memory"
    est = estimate(ops, UNIT)
    assert est.executed_ops == 2 + 4 + 1  # Conv, Gemm, four DequantizeLinear, Relu
    assert "int8 weights but float activations" in est.notes[0]


def test_sface_op_list(shared):
    path = shared / "models/sface/sface_2021dec_fp32.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    ops = onnx_ops(path)
    assert sum(op.macs for op in ops) == pytest.approx(574e6, rel=0.01)
    assert sum(op.kind == "compute" for op in ops) == 28  # 27 Conv + 1 Gemm
