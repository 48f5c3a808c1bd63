"""The largest int8 weight an artifact's dense convs and FC layers multiply with.

Whether an int8 artifact computes the same network on every CPU depends on it (:mod:`edgekd.isa`): ORT and
OpenVINO sum u8×s8 pairs in a saturating int16 on x86 without VNNI, exact only while |w| ≤ 64. QAT artifacts
take their bound from the target spec; PTQ artifacts are made by the runtime's own tool (ORT
``reduce_range``, NNCF's ``overflow_fix``), so their bound is read from the file. Depthwise convs are left
out: both runtimes widen before adding there (no pair sums), so any 8-bit weight is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.errors import ModelError

DENSE_WEIGHT_INPUT = {"Conv": 1, "Gemm": 1, "MatMul": 1}  # ONNX op -> input index of its weight


def artifact_weight_bound(path: str | Path) -> int | None:
    """max |w| over the int8 weights of non-depthwise convs / FC layers; None for a float artifact or a
    format whose runtime accumulates exactly everywhere (TFLite/XNNPACK)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return _onnx_bound(path)
    if path.suffix == ".xml":
        return _openvino_bound(path)
    if path.suffix == ".tflite":
        return None
    raise ModelError(f"no int8 weight reader for '{path.suffix}' artifacts (known: .onnx, .xml, .tflite)")


def _bound(values: list[np.ndarray]) -> int | None:
    return max((int(np.abs(v.astype(np.int32)).max()) for v in values if v.size), default=None)


def _onnx_bound(path: Path) -> int | None:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    int8 = {
        t.name: numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8
    }
    dequantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    weights = []
    for node in graph.node:
        index = DENSE_WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index or _depthwise(node):
            continue
        source = dequantized.get(node.input[index])
        if source in int8:
            weights.append(int8[source])
    return _bound(weights)


def _depthwise(node) -> bool:
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return node.op_type == "Conv" and group > 1


def _openvino_bound(path: Path) -> int | None:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    weights = [
        op.get_data()
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Constant"
        and op.get_element_type() == ov.Type.i8
        and _feeds(op, ("Convolution", "MatMul"))
    ]
    return _bound(weights)


def _feeds(op, kinds: tuple[str, ...], depth: int = 6) -> bool:
    """Whether ``op``'s output reaches one of ``kinds`` through the weight's decompression chain
    (Convert -> Subtract -> Multiply -> Reshape), stopping at any other compute op."""
    chain = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze")
    for target in op.output(0).get_target_inputs():
        node = target.get_node()
        kind = node.get_type_name()
        if kind in kinds:
            return True
        if kind in chain and depth > 0 and _feeds(node, kinds, depth - 1):
            return True
    return False
