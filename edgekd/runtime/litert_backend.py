"""LiteRT (TFLite) backend: ``.tflite`` artifacts on ``ai_edge_litert``'s interpreter.

A full-integer TFLite model takes an int8 (or uint8) input tensor and may return an int8 output. The
interpreter does not convert for us, so this backend quantizes the preprocessed float batch with the
model's *own* input scale/zero-point and dequantizes outputs with theirs; a model whose I/O is float is
fed as is. The parameters are read from the file, never passed in, so they cannot drift from it.

Batches: litert-torch exports a static batch (usually 1) and the graph often hard-codes it (e.g. a
Reshape to ``(1, 512)``), so resizing the input would break such models. A static batch sets
:attr:`max_batch` and the base class splits the images; a model whose signature declares a dynamic batch
(``-1``) is resized to each call's batch instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError
from edgekd.runtime.base import Embedder

INTEGER_DTYPES = (np.int8, np.uint8, np.int16)


@dataclass(frozen=True)
class TensorQuantization:
    """Per-tensor affine parameters of a quantized I/O tensor: ``real = scale * (q - zero_point)``."""

    dtype: str
    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensor_quantization(detail: dict[str, Any]) -> TensorQuantization | None:
    """The quantization of an interpreter tensor detail, ``None`` for a float tensor."""
    if detail["dtype"] not in INTEGER_DTYPES:
        return None
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise ModelError(
            f"tensor {detail['name']} is {np.dtype(detail['dtype'])} but has no quantization scale"
        )
    return TensorQuantization(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def quantize(x: np.ndarray, q: TensorQuantization) -> np.ndarray:
    """Float → integer with round-half-to-even and saturation, as TFLite's QUANTIZE op does."""
    info = np.iinfo(q.dtype)
    return np.clip(np.round(x / q.scale) + q.zero_point, info.min, info.max).astype(q.dtype)


def dequantize(x: np.ndarray, q: TensorQuantization) -> np.ndarray:
    return ((x.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)


def open_interpreter(path: str | Path, threads: int | None = None) -> Any:
    """An allocated ``ai_edge_litert`` interpreter (default op resolver, i.e. XNNPACK as deployed)."""
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"TFLite model not found: {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
        interpreter.allocate_tensors()
    except Exception as exc:  # ValueError for a non-flatbuffer, RuntimeError for unsupported ops
        raise ModelError(f"{path} is not a loadable TFLite model: {exc}") from exc
    return interpreter


class LiteRtEmbedder(Embedder):
    """A ``.tflite`` face model; quantizes int8/uint8 inputs and dequantizes outputs with its own params."""

    def __init__(self, path: str | Path, input_spec: PreprocessSpec, threads: int | None = None):
        path = Path(path)
        self.interpreter = open_interpreter(path, threads)
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected one image input, found {[d['name'] for d in inputs]}")
        self.name = path.name
        self.input_spec = input_spec
        self._input, self._output = inputs[0], outputs[0]
        self.input_quantization = tensor_quantization(self._input)
        self.output_quantization = tensor_quantization(self._output)
        self._check_layout(path)
        self.dynamic_batch = int(self._input["shape_signature"][0]) == -1
        self.max_batch = None if self.dynamic_batch else int(self._input["shape"][0])
        self.embedding_size = int(self._output["shape"][-1])

    def _check_layout(self, path: Path) -> None:
        """Fail early when the declared layout/size cannot be this model's input shape."""
        h, w = self.input_spec.size
        expected = (3, h, w) if self.input_spec.layout == "NCHW" else (h, w, 3)
        shape = tuple(int(d) for d in self._input["shape"][1:])
        if shape != expected:
            raise ModelError(
                f"{path}: input shape {shape} does not match the preprocessing spec "
                f"({self.input_spec.layout}, {h}x{w} → {expected}); fix the manifest or --preprocess"
            )

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        index = self._input["index"]
        if self.dynamic_batch and self.interpreter.get_input_details()[0]["shape"][0] != len(batch):
            self.interpreter.resize_tensor_input(index, [len(batch), *self._input["shape"][1:]])
            self.interpreter.allocate_tensors()
        data = quantize(batch, self.input_quantization) if self.input_quantization else batch
        self.interpreter.set_tensor(index, data)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if self.output_quantization:
            out = dequantize(out, self.output_quantization)
        return np.asarray(out, np.float32).reshape(len(batch), -1)
