"""The roofline op list of a ``.tflite`` model, read from LiteRT's own interpreter (builtin kernels).

TFLite's converter already fuses activations and batch norm into CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED, so every op in the list executes: MAC ops are compute, shape ops (RESHAPE, SQUEEZE, …)
are free and the rest (ADD, PRELU, QUANTIZE, L2_NORMALIZATION, …) move memory. Bytes are every input
and output at the element size stored in the model (int8 activations and weights, int32 biases).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekd.bench.roofline import OpCost
from edgekd.convert.int8_share import (
    TFLITE_INT8,
    TFLITE_MAC_OPS,
    TFLITE_NON_COMPUTE,
    tflite_macs,
    tflite_op_table,
)


def _bytes(tensors: list[dict]) -> int:
    return sum(math.prod(int(d) for d in t["shape"]) * np.dtype(t["dtype"]).itemsize for t in tensors)


def tflite_ops(path: str | Path, batch: int = 1) -> list[OpCost]:
    """The op list of a ``.tflite`` model at ``batch``: MACs, bytes, precision and kind per op."""
    costs = []
    for i, (name, ins, outs) in enumerate(tflite_op_table(path, batch=batch)):
        label = f"{name}_{i}"
        if name in TFLITE_NON_COMPUTE:
            costs.append(OpCost(label, name, "free", "fp32"))
            continue
        int8 = bool(ins) and np.dtype(ins[0]["dtype"]) in TFLITE_INT8
        precision = "int8" if int8 else "fp32"
        if name in TFLITE_MAC_OPS:
            shapes = [tuple(int(d) for d in t["shape"]) for t in ins]
            macs = tflite_macs(name, shapes, tuple(int(d) for d in outs[0]["shape"]))
            costs.append(OpCost(label, name, "compute", precision, macs, _bytes(ins + outs)))
        else:
            costs.append(OpCost(label, name, "memory", precision, 0, _bytes(ins + outs)))
    return costs
