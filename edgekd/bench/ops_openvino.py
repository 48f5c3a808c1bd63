"""The roofline op list of an OpenVINO IR (``.xml`` + ``.bin``), read with OpenVINO's own model reader.

An int8 IR (NNCF, or OpenVINO's conversion of a PT2E graph) computes a convolution in int8 when its data
input comes from a ``FakeQuantize`` and its weights are an int8 ``Constant`` behind ``Convert`` /
``Subtract`` / ``Multiply`` (decompression that the CPU plugin folds at compile time). What the plugin
fuses into a convolution (bias / scale ``Add``/``Multiply`` with a constant, activations, the requantising
``FakeQuantize`` of its output) costs nothing; constant subgraphs and shape ops are free.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgekd.bench.roofline import Kind, OpCost
from edgekd.errors import ModelError

COMPUTE = {"Convolution", "GroupConvolution", "MatMul"}
FUSABLE = {
    "Add",
    "Multiply",
    "Subtract",
    "Clamp",
    "Relu",
    "PRelu",
    "Swish",
    "HSwish",
    "Sigmoid",
    "FakeQuantize",
}
FREE = {"Parameter", "Result", "Constant", "Reshape", "Squeeze", "Unsqueeze", "ShapeOf", "Convert"}
EIGHT_BIT = {"i8", "u8"}


def _source(op: Any, index: int) -> Any:
    return op.input(index).get_source_output().get_node()


def _numel(shape: Any) -> int:
    return math.prod(int(d) for d in shape)


def _int8_weights(node: Any) -> bool:
    """An int8/uint8 Constant behind the decompression chain (Convert, Subtract, Multiply, Reshape)."""
    for _ in range(6):
        kind = node.get_type_name()
        if kind == "Constant":
            return node.get_output_element_type(0).get_type_name() in EIGHT_BIT
        if kind not in ("Convert", "Subtract", "Multiply", "Reshape", "Transpose"):
            return False
        node = _source(node, 0)
    return False


def _requantised(op: Any) -> bool:
    """The output reaches a ``FakeQuantize`` through ops fused into ``op`` only: written as int8."""
    for _ in range(4):
        users = list(op.output(0).get_target_inputs())
        if len(users) != 1:
            return False
        op = users[0].get_node()
        if op.get_type_name() == "FakeQuantize":
            return True
        if op.get_type_name() not in FUSABLE:
            return False
    return False


def _fuses_into_compute(acts: list[Any], compute_outputs: set[str]) -> bool:
    """One activation input, the only use of a convolution's (fused) output: the plugin fuses it."""
    if len(acts) != 1 or acts[0].get_friendly_name() not in compute_outputs:
        return False
    return len(acts[0].output(0).get_target_inputs()) == 1


def openvino_ops(path: str | Path, batch: int = 1) -> list[OpCost]:
    """The op list of an IR at ``batch``: MACs, bytes, precision and kind per operation."""
    try:
        import openvino as ov
    except ImportError as exc:  # pragma: no cover - openvino is a dependency
        raise ModelError(f"reading an OpenVINO IR needs openvino: {exc}") from exc
    try:
        model = ov.Core().read_model(str(path))
        shape = model.input(0).get_partial_shape()
        if shape[0].is_dynamic or shape[0].get_length() != batch:  # size the graph at this batch
            shape[0] = batch
            model.reshape(shape)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable OpenVINO IR at batch {batch}: {exc}") from exc
    if model.input(0).get_partial_shape().is_dynamic:
        raise ModelError(
            f"{path}: input shape {model.input(0).get_partial_shape()} has dynamic dimensions besides the "
            "batch, so its ops cannot be sized: no roofline estimate (export it with a fixed image size)"
        )
    constant: set[str] = set()
    compute_outputs: set[str] = set()
    costs: list[OpCost] = []
    for op in model.get_ordered_ops():
        name, kind_name = op.get_friendly_name(), op.get_type_name()
        inputs = [_source(op, i) for i in range(op.get_input_size())]
        if kind_name == "Constant" or (inputs and all(n.get_friendly_name() in constant for n in inputs)):
            constant.add(name)
            costs.append(OpCost(name, kind_name, "free", "fp32"))
            continue
        acts = [n for n in inputs if n.get_friendly_name() not in constant]
        if kind_name in FREE:
            if acts and acts[0].get_friendly_name() in compute_outputs:
                compute_outputs.add(name)
            costs.append(OpCost(name, kind_name, "free", "fp32"))
            continue
        if kind_name in FUSABLE and _fuses_into_compute(acts, compute_outputs):
            compute_outputs.add(name)
            costs.append(OpCost(name, kind_name, "fused", "fp32"))
            continue
        costs.append(_cost(op, kind_name, acts))
        if kind_name in COMPUTE:
            compute_outputs.add(name)
    return costs


def _cost(op: Any, kind_name: str, acts: list[Any]) -> OpCost:
    try:
        out = op.get_output_shape(0)
        shapes = [op.input(i).get_shape() for i in range(op.get_input_size())]
    except Exception as exc:
        raise ModelError(
            f"cannot size {op.get_friendly_name()} ({kind_name}): dynamic shape ({exc})"
        ) from exc
    name = op.get_friendly_name()
    if kind_name not in COMPUTE:
        int8 = bool(acts) and all(n.get_type_name() == "FakeQuantize" for n in acts)
        size = 1 if int8 else 4
        nbytes = sum(_numel(s) for s in shapes) * size + _numel(out) * size
        return OpCost(name, kind_name, "memory", "int8" if int8 else "fp32", 0, nbytes)
    data, weights = _source(op, 0), _source(op, 1)
    int8 = data.get_type_name() == "FakeQuantize" and _int8_weights(weights)
    w = shapes[1]
    if kind_name == "Convolution":
        k = _numel(w[1:])
    elif kind_name == "GroupConvolution":
        k = _numel(w[2:])
    else:
        transpose_a = bool(op.get_attributes().get("transpose_a", False))
        k = int(shapes[0][-2] if transpose_a else shapes[0][-1])
    macs = _numel(out) * k
    size = 1 if int8 else 4
    out_size = 1 if int8 and _requantised(op) else 4
    nbytes = (_numel(shapes[0]) + _numel(w)) * size + _numel(out) * out_size
    kind: Kind = "compute"
    return OpCost(name, kind_name, kind, "int8" if int8 else "fp32", macs, nbytes)
