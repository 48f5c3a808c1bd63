"""OpenVINO backend: IR ``.xml`` + ``.bin`` artifacts (or an ``ov.Model`` in memory) on the CPU plugin.

Two CPU-plugin defaults would make results lie, so both are set explicitly:

* ``INFERENCE_PRECISION_HINT`` is ``f32`` unless asked otherwise. On CPUs with AMX/AVX512-BF16 (this
  one) OpenVINO runs float models in **bf16** by default, so a "float baseline" would be neither float
  nor comparable to the PyTorch model. int8 layers are unaffected by the hint.
* ``INFERENCE_NUM_THREADS`` follows ``threads``, so latency and parity runs use the budget they report.

:func:`runtime_precisions` reads the *compiled* model's runtime graph, i.e. what the plugin really
executes after its own fusions (a Convolution listed ``u8`` there runs an int8 kernel), rather than the
FakeQuantize nodes of the IR, which only say what the converter intended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError
from edgekd.runtime.base import Embedder

if TYPE_CHECKING:
    import openvino as ov

DEFAULT_PRECISION = "f32"


@dataclass(frozen=True)
class RuntimeLayer:
    """One node of a compiled model's runtime graph: what the CPU plugin executes, at which precision."""

    name: str
    layer_type: str  # "Convolution", "FullyConnected", "Eltwise", "Reorder", ...
    precision: str  # "u8", "i8", "f32", "bf16", ...
    input_shapes: tuple[tuple[int, ...] | None, ...]  # None where a dimension is dynamic
    output_shape: tuple[int, ...] | None


def read_openvino_model(path: str | Path) -> ov.Model:
    """Read an IR ``.xml`` (its ``.bin`` beside it); errors name the missing or unreadable file."""
    import openvino as ov

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"OpenVINO model not found: {path}")
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise ModelError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing beside it")
    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError with a C++ trace for bad XML
        raise ModelError(f"{path} is not a readable OpenVINO model: {exc}") from exc


def compile_openvino(
    model: ov.Model, threads: int | None = None, precision: str = DEFAULT_PRECISION, device: str = "CPU"
) -> ov.CompiledModel:
    """Compile with an explicit precision hint and thread count (see the module docstring for why)."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        return ov.Core().compile_model(model, device, config)
    except Exception as exc:
        raise ModelError(f"OpenVINO cannot compile {model.get_friendly_name()} for {device}: {exc}") from exc


def _static(shape: Any) -> tuple[int, ...] | None:
    return tuple(int(d.get_length()) for d in shape) if shape.is_static else None


def runtime_precisions(compiled: ov.CompiledModel) -> list[RuntimeLayer]:
    """Every node of the runtime graph with its layer type, runtime precision and static shapes.

    The runtime graph carries the plugin's own names in ``rt_info`` (``layerType``, ``runtimePrecision``);
    shapes stay ``None`` for a model compiled with dynamic dimensions (reshape it first for MAC counts).
    """
    layers = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layers.append(
            RuntimeLayer(
                name=op.get_friendly_name(),
                layer_type=info["layerType"].astype(str),
                precision=info["runtimePrecision"].astype(str),
                input_shapes=tuple(_static(i.get_partial_shape()) for i in op.inputs()),
                output_shape=_static(op.get_output_partial_shape(0)) if op.get_output_size() else None,
            )
        )
    return layers


class OpenVinoEmbedder(Embedder):
    """An OpenVINO IR (path) or ``ov.Model`` on the CPU plugin; f32 precision hint unless told otherwise."""

    def __init__(
        self,
        model: str | Path | ov.Model,
        input_spec: PreprocessSpec,
        threads: int | None = None,
        precision: str = DEFAULT_PRECISION,
        name: str | None = None,
    ):
        if isinstance(model, str | Path):
            name = name or Path(model).name
            model = read_openvino_model(model)
        if len(model.inputs) != 1:
            raise ModelError(
                f"{name or model.get_friendly_name()}: expected one image input, found "
                f"{[i.get_any_name() for i in model.inputs]}"
            )
        self.name = name or model.get_friendly_name()
        self.input_spec = input_spec
        self.compiled = compile_openvino(model, threads, precision)
        self.request = self.compiled.create_infer_request()
        batch = model.inputs[0].get_partial_shape()[0]
        self.max_batch = batch.get_length() if batch.is_static else None
        last = model.outputs[0].get_partial_shape()[-1]
        self.embedding_size = last.get_length() if last.is_static else 0

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch})
        out = result[self.compiled.output(0)]
        return np.asarray(out, np.float32).reshape(len(batch), -1)
