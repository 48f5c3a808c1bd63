"""Int32 conv/linear bias in the converted model: the bias ONNX Runtime's integer kernels really add.

ORT's QLinearConv/QGemm accumulate in int32 and add the bias as an int32 in accumulator units,
``round(bias / (act_scale * weight_scale))``; a float bias in a QDQ model is quantized that way by ORT's
``WeightBiasQuantization`` optimizer. PT2E's converted model keeps the bias in float, so the two
differ by up to half an accumulator step per channel: a per-channel offset that flips output roundings,
and the flips grow layer by layer (measured on MobileFaceNet: ORT EXTENDED vs the PT2E model, mean
cosine 0.9966 with a float bias). :func:`quantize_bias_int32` rewrites the bias of every conv/linear
whose input and weight are dequantized as ``dequantize_per_channel(int32 bias, act_scale * weight_scale)``,
so PyTorch computes with the rounded bias and the exported ONNX carries the int32 bias ORT fuses as is.
"""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

aten = torch.ops.aten
qd = torch.ops.quantized_decomposed
WEIGHTED = {aten.conv1d.default, aten.conv2d.default, aten.linear.default}
DQ_ACT = {qd.dequantize_per_tensor.default, qd.dequantize_per_tensor.tensor}
DQ_WEIGHT = {qd.dequantize_per_channel.default, qd.dequantize_per_tensor.default}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _value(gm: GraphModule, arg: object) -> torch.Tensor:
    """A qparam argument as a float64 tensor (a Python number or a get_attr constant)."""
    if isinstance(arg, Node):
        if arg.op != "get_attr":
            raise ValueError(f"qparam {arg} is not a constant")
        arg = attr_value(gm, str(arg.target))
    return torch.as_tensor(arg, dtype=torch.float64)


def attr_value(gm: GraphModule, target: str) -> torch.Tensor:
    """The tensor a ``get_attr`` node's dotted target names."""
    obj: object = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]


def _bias_scale(gm: GraphModule, node: Node) -> torch.Tensor | None:
    """``act_scale * weight_scale`` (float64, one per output channel), or None if not both dequantized."""
    x, w = node.args[0], node.args[1]
    if not (isinstance(x, Node) and x.target in DQ_ACT and isinstance(w, Node) and w.target in DQ_WEIGHT):
        return None
    if w.target == qd.dequantize_per_channel.default and w.args[3] != 0:
        return None  # per-channel scales must run along the output channels
    try:
        if bool((_value(gm, w.args[2]) != 0).any()):  # weights must be symmetric
            return None
        return _value(gm, x.args[1]) * _value(gm, w.args[1])
    except ValueError:
        return None


def quantize_bias_int32(gm: GraphModule) -> int:
    """Replace each dequantized conv/linear's float bias by an int32 one (in place); returns how many."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in WEIGHTED or len(node.args) < 3:
            continue
        bias = node.args[2]
        if not (isinstance(bias, Node) and bias.op == "get_attr"):
            continue
        scale = _bias_scale(gm, node)
        if scale is None:
            continue
        b = attr_value(gm, str(bias.target)).detach()
        scale = scale.expand(b.shape).to(torch.float32)
        q = torch.round(b.double() / scale.double()).clamp(INT32_MIN, INT32_MAX).to(torch.int32)
        prefix = f"_int32_bias_{count}"
        gm.register_buffer(f"{prefix}_q", q)
        gm.register_buffer(f"{prefix}_scale", scale.contiguous())
        gm.register_buffer(f"{prefix}_zero_point", torch.zeros(b.shape, dtype=torch.int64))
        with gm.graph.inserting_before(node):
            args = [gm.graph.get_attr(f"{prefix}_{k}") for k in ("q", "scale", "zero_point")]
            dq = gm.graph.call_function(
                qd.dequantize_per_channel.default, (*args, 0, INT32_MIN, INT32_MAX, torch.int32)
            )
        dq.meta["val"] = bias.meta.get("val")
        node.replace_input_with(bias, dq)
        if not bias.users:  # the float bias is gone from the graph: drop it from the module too
            owner, _, leaf = str(bias.target).rpartition(".")
            gm.graph.erase_node(bias)
            if not any(n.op == "get_attr" and n.target == bias.target for n in gm.graph.nodes):
                delattr(gm.get_submodule(owner) if owner else gm, leaf)
        count += 1
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return count
