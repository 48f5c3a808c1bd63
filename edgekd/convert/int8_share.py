"""Share of conv/FC multiply-adds a runtime *really* executes in int8.

A QDQ model, an IR with FakeQuantize nodes or a TFLite file with int8 weights only says what the
converter intended; the runtime may leave a convolution in float (ONNX Runtime cannot fuse every QDQ
pattern: with int8 activations 15 of MobileFaceNet's 51 convs stay float) and silently lose the speed-up.
So each analysis reads what the runtime executes:

* **ONNX Runtime**: the graph ORT itself writes after optimisation
  (``SessionOptions.optimized_model_filepath``) at EXTENDED, where the QDQ → QLinearConv/QGemm fusions
  happen, or at ALL. Integer kernels are QLinearConv, QGemm, QLinearMatMul, ConvInteger, MatMulInteger,
  ...; a ``Conv``/``Gemm``/``MatMul`` left between DequantizeLinear and QuantizeLinear runs in float.
  Shapes come from one run of that optimized graph at batch 1 with its intermediate tensors exposed,
  because ONNX's and ORT's symbolic shape inference cannot follow ORT's internal NHWC/NCHWc ops at ALL.
* **OpenVINO**: the compiled model's runtime graph (``Convolution``/``FullyConnected``/``MatMul`` with
  ``runtimePrecision`` ``u8``/``i8``); the model is reshaped to a static input first so shapes are known.
* **TFLite**: the interpreter's op list and tensor details without the XNNPACK delegate; CONV_2D,
  DEPTHWISE_CONV_2D, FULLY_CONNECTED and BATCH_MATMUL count as int8 when their activation input is.

MACs are ``numel(output) × K`` with ``K`` the reduction length per output element. The report also lists
the remaining float ops (float ADD islands, PReLU as MUL/SUB, the final BatchNorm1d, ...).
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from edgekd.errors import ModelError

if TYPE_CHECKING:
    import onnx
    import openvino as ov

Precision = Literal["int8", "float"]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerMacs:
    """One conv/FC layer as the runtime executes it."""

    name: str
    op: str
    precision: Precision
    macs: int


@dataclass(frozen=True)
class Int8ShareReport:
    """MACs per layer and precision, plus the non-conv ops that still run in float (counted by type)."""

    runtime: str
    artifact: str
    layers: tuple[LayerMacs, ...]
    float_ops: dict[str, int] = field(default_factory=dict)

    @property
    def int8_macs(self) -> int:
        return sum(layer.macs for layer in self.layers if layer.precision == "int8")

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def share(self) -> float:
        return self.int8_macs / self.total_macs if self.total_macs else 0.0

    @property
    def float_layers(self) -> list[LayerMacs]:
        return [layer for layer in self.layers if layer.precision == "float"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "artifact": self.artifact,
            "int8_share": self.share,
            "int8_macs": self.int8_macs,
            "total_macs": self.total_macs,
            "layers": {"int8": len(self.layers) - len(self.float_layers), "float": len(self.float_layers)},
            "float_layers": [f"{layer.name} ({layer.op})" for layer in self.float_layers],
            "float_ops": dict(self.float_ops),
        }

    def to_markdown(self) -> str:
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(self.float_ops.items())) or "none"
        lines = [
            f"### int8 share ({self.runtime}): {100 * self.share:.1f} % of conv/FC MACs",
            "",
            f"- `{self.artifact}`: {self.int8_macs:,} of {self.total_macs:,} MACs in int8; "
            f"{len(self.layers) - len(self.float_layers)} int8 / {len(self.float_layers)} float "
            "conv/FC layers",
            f"- other ops in float: {ops}",
        ]
        lines += [
            f"- float layer: `{layer.name}` ({layer.op}, {layer.macs:,} MACs)" for layer in self.float_layers
        ]
        return "\n".join(lines)


def _report(runtime: str, artifact: str, layers: list[LayerMacs], float_ops: Counter[str]) -> Int8ShareReport:
    if not layers:
        raise ModelError(f"{artifact}: no conv/FC layers found in the {runtime} graph; nothing to measure")
    return Int8ShareReport(runtime, artifact, tuple(layers), dict(sorted(float_ops.items())))


def int8_share(path: str | Path, **options: Any) -> Int8ShareReport:
    """Measure by the artifact's suffix (``.onnx``, ``.xml``, ``.tflite``); ``options`` go to the analyser."""
    from edgekd.formats import get_format, suffixes

    path = Path(path)
    if path.suffix.lower() not in suffixes():
        raise ModelError(
            f"cannot measure the int8 share of {path}: known suffixes are {', '.join(suffixes())}"
        )
    if not path.is_file():
        raise ModelError(f"artifact not found: {path}")
    return get_format(path.suffix.lower()).int8_share(path, **options)


# --------------------------------------------------------------------------------------------------------
# ONNX Runtime

ORT_INT8_OPS = {
    "QLinearConv",
    "NhwcQLinearConv",
    "ConvInteger",
    "QGemm",
    "QLinearMatMul",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
}
ORT_FLOAT_OPS = {
    "Conv",
    "FusedConv",
    "NhwcConv",
    "NhwcFusedConv",
    "Gemm",
    "FusedGemm",
    "MatMul",
    "FusedMatMul",
}
ORT_CONV_WEIGHT = {"QLinearConv": 3, "NhwcQLinearConv": 3}  # others: input 1
# ops that move or relabel data, and the quantization boundaries themselves: not "float compute"
ORT_NON_COMPUTE = {
    "QuantizeLinear",
    "DequantizeLinear",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Identity",
    "Shape",
    "Constant",
    "ReorderInput",
    "ReorderOutput",
}
ORT_LEVELS = ("basic", "extended", "all")


def optimize_onnx(path: str | Path, out: str | Path, level: str = "extended") -> onnx.ModelProto:
    """Let ONNX Runtime optimise ``path`` at ``level`` and return the graph it wrote to ``out``."""
    import onnx
    import onnxruntime as ort

    if level not in ORT_LEVELS:
        raise ModelError(f"unknown ORT optimisation level '{level}'; known: {', '.join(ORT_LEVELS)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level.upper()}")
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3  # ALL warns that NCHWc graphs are host-specific: expected here
    try:
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
    return onnx.load(str(out))


def _static_input_shape(model: onnx.ModelProto, input_shape: Sequence[int] | None) -> Shape:
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    shape[0] = shape[0] or 1
    if min(shape) <= 0:
        raise ModelError(f"input {model.graph.input[0].name} has dynamic dims {shape}: pass input_shape")
    return tuple(shape)


def _ort_runtime_shapes(model: onnx.ModelProto, tensors: set[str], input_shape: Shape) -> dict[str, Shape]:
    """Shapes of ``tensors`` from one zero-input run of the (already optimised) graph, unoptimised again."""
    import onnx
    import onnxruntime as ort

    graph_input = model.graph.input[0]
    shapes: dict[str, Shape] = {t.name: tuple(t.dims) for t in model.graph.initializer}
    shapes[graph_input.name] = input_shape
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    wanted = sorted(tensors - set(shapes) - existing)
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in wanted)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    dtype = onnx.helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type)
    outputs = session.run(None, {graph_input.name: np.zeros(input_shape, dtype)})
    shapes.update({o.name: tuple(v.shape) for o, v in zip(session.get_outputs(), outputs, strict=True)})
    return shapes


def _ort_macs(node: onnx.NodeProto, shapes: dict[str, Shape]) -> int:
    out = shapes[node.output[0]]
    if "Conv" in node.op_type:
        weight = shapes[node.input[ORT_CONV_WEIGHT.get(node.op_type, 1)]]
        return math.prod(out) * math.prod(weight[1:])
    a = shapes[node.input[0]]
    trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
    return math.prod(out) * (a[0] if trans_a else a[-1])


def onnx_int8_share(
    path: str | Path, level: str = "extended", input_shape: Sequence[int] | None = None
) -> Int8ShareReport:
    """int8 share of an ONNX model as ONNX Runtime's CPU provider executes it after optimisation."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        model = optimize_onnx(path, Path(tmp) / "optimized.onnx", level)
    mac_nodes = [n for n in model.graph.node if n.op_type in ORT_INT8_OPS | ORT_FLOAT_OPS]
    tensors = {name for n in mac_nodes for name in (*n.input, *n.output) if name}
    shapes = _ort_runtime_shapes(model, tensors, _static_input_shape(model, input_shape))
    layers = [
        LayerMacs(
            n.name or n.output[0],
            n.op_type,
            "int8" if n.op_type in ORT_INT8_OPS else "float",
            _ort_macs(n, shapes),
        )
        for n in mac_nodes
    ]
    float_ops = Counter(
        n.op_type
        for n in model.graph.node
        if n.op_type not in ORT_INT8_OPS | ORT_FLOAT_OPS | ORT_NON_COMPUTE
        and not n.op_type.startswith("QLinear")
    )
    return _report(f"onnxruntime ({level})", path.name, layers, float_ops)


# --------------------------------------------------------------------------------------------------------
# OpenVINO

OV_MAC_LAYERS = {"Convolution", "FullyConnected", "MatMul"}
OV_INT8 = {"u8", "i8"}
OV_NON_COMPUTE = {
    "Input",
    "Output",
    "Parameter",
    "Result",
    "Const",
    "Reorder",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
}


def _ov_static(model: ov.Model, input_shape: Sequence[int] | None) -> ov.Model:
    """A static-shape copy (batch 1 unless ``input_shape`` says otherwise) so runtime shapes are known."""
    shape = model.inputs[0].get_partial_shape()
    if input_shape is None:
        if shape.rank.is_dynamic or any(d.is_dynamic for d in list(shape)[1:]):
            raise ModelError(f"{model.get_friendly_name()}: input shape {shape} is dynamic; pass input_shape")
        input_shape = [1, *(d.get_length() for d in list(shape)[1:])]
    static = model.clone()
    static.reshape({static.inputs[0]: list(input_shape)})
    return static


def _ov_macs(layer: Any) -> int:
    out, weight = layer.output_shape, layer.input_shapes[1] if len(layer.input_shapes) > 1 else None
    if out is None or weight is None:
        raise ModelError(f"OpenVINO layer {layer.name}: shapes unknown, cannot count MACs")
    if layer.layer_type == "Convolution":  # [O, I, kh, kw], or grouped [G, O/G, I/G, kh, kw]
        return math.prod(out) * math.prod(weight[1:] if len(weight) == len(out) else weight[2:])
    if layer.layer_type == "FullyConnected":  # weights [O, K] (possibly repacked): K = numel / O
        return math.prod(out) * (math.prod(weight) // out[-1])
    return math.prod(out) * layer.input_shapes[0][-1]  # MatMul of two activations


def openvino_int8_share(
    model: str | Path | ov.Model, input_shape: Sequence[int] | None = None, precision: str = "f32"
) -> Int8ShareReport:
    """int8 share of an OpenVINO model as the CPU plugin compiles it (runtime graph precisions)."""
    from edgekd.runtime.openvino_backend import compile_openvino, read_openvino_model, runtime_precisions

    name = Path(model).name if isinstance(model, str | Path) else model.get_friendly_name()
    if isinstance(model, str | Path):
        model = read_openvino_model(model)
    runtime = runtime_precisions(
        compile_openvino(_ov_static(model, input_shape), threads=1, precision=precision)
    )
    layers = [
        LayerMacs(
            layer.name, layer.layer_type, "int8" if layer.precision in OV_INT8 else "float", _ov_macs(layer)
        )
        for layer in runtime
        if layer.layer_type in OV_MAC_LAYERS
    ]
    float_ops = Counter(
        f"{layer.layer_type}:{layer.precision}"
        for layer in runtime
        if layer.layer_type not in OV_MAC_LAYERS | OV_NON_COMPUTE and layer.precision not in OV_INT8
    )
    return _report(f"openvino ({precision} hint)", name, layers, float_ops)


# --------------------------------------------------------------------------------------------------------
# TFLite

TFLITE_MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"}
TFLITE_INT8 = {np.dtype(np.int8), np.dtype(np.uint8)}
TFLITE_NON_COMPUTE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "DELEGATE"}


def tflite_macs(op: str, shapes: list[Shape], out: Shape) -> int:
    weight = shapes[1]
    if op == "CONV_2D":  # weights [O, kh, kw, I]
        return math.prod(out) * math.prod(weight[1:])
    if op == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, C·multiplier]
        return math.prod(out) * weight[1] * weight[2]
    return math.prod(out) * shapes[0][-1]  # FULLY_CONNECTED ([O, K] weights), BATCH_MATMUL


def tflite_op_table(
    path: str | Path, threads: int | None = None, batch: int = 1
) -> list[tuple[str, list, list]]:
    """``(op name, input tensor details, output tensor details)`` per op of a ``.tflite`` model, from the
    builtin kernels (no delegate rewriting the graph), at ``batch`` (the first input resized)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = Path(path)
    try:
        interpreter = Interpreter(
            model_path=str(path),
            num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        if batch != 1:
            first = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(first["index"], [batch, *first["shape"][1:]])
        interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"{path} is not a loadable TFLite model (batch {batch}): {exc}") from exc
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    # _get_ops_details is the interpreter's only op-level view (public API has tensors only)
    return [
        (
            op["op_name"],
            [tensors[i] for i in op["inputs"] if i >= 0],
            [tensors[i] for i in op["outputs"] if i >= 0],
        )
        for op in interpreter._get_ops_details()
    ]


def tflite_int8_share(path: str | Path, threads: int | None = None) -> Int8ShareReport:
    """int8 share of a ``.tflite`` model from its op list (builtin kernels, no delegate rewriting it)."""
    layers, float_ops = [], Counter[str]()
    for name, ins, outs in tflite_op_table(path, threads):
        if name in TFLITE_MAC_OPS:
            shapes = [tuple(int(d) for d in t["shape"]) for t in ins]
            out = tuple(int(d) for d in outs[0]["shape"])
            precision: Precision = "int8" if np.dtype(ins[0]["dtype"]) in TFLITE_INT8 else "float"
            layers.append(LayerMacs(outs[0]["name"], name, precision, tflite_macs(name, shapes, out)))
        elif name not in TFLITE_NON_COMPUTE and any(np.dtype(t["dtype"]) == np.float32 for t in ins + outs):
            float_ops[name] += 1
    return _report("tflite", Path(path).name, layers, float_ops)
