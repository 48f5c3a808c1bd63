"""LiteRT (TFLite) on the device, for the runner (self-contained: numpy and ai_edge_litert only).

``Model(path, threads, providers)`` opens the interpreter with ``threads`` threads and the default op
resolver (XNNPACK, as deployed); ``providers`` is unused. A full-integer model's input is quantized with
the file's own scale/zero point (round half to even, saturated, as TFLite's QUANTIZE op) and an integer
output dequantized with its own, the arithmetic of ``edgekd.runtime.litert_backend``. A static batch sets
``max_batch`` (the runner splits and pads); a dynamic one (signature -1) is resized per call.
``run(batch)`` returns ``(N, D)`` float32.
"""

from __future__ import annotations

import numpy as np

RUNTIME = "ai_edge_litert"  # the module a device needs: a missing one is reported, not a traceback
_INTEGER = (np.int8, np.uint8, np.int16)


def _quantization(detail: dict):
    if detail["dtype"] not in _INTEGER:
        return None
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise ValueError(f"tensor {detail['name']} is integer but has no quantization scale")
    return np.dtype(detail["dtype"]), float(scale), int(zero_point)


class Model:
    def __init__(self, path: str, threads: int, providers: list[str] | tuple[str, ...] = ()):
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=int(threads))
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"expected one image input, found {[d['name'] for d in inputs]}")
        self._input, self._output = inputs[0], self.interpreter.get_output_details()[0]
        self._in_q, self._out_q = _quantization(self._input), _quantization(self._output)
        self.dynamic = int(self._input["shape_signature"][0]) == -1
        self.max_batch = None if self.dynamic else int(self._input["shape"][0])
        version = getattr(ai_edge_litert, "__version__", None)
        self.info = {
            "runtime": RUNTIME,
            "version": version,
            "providers": ["XNNPACK"],
            "providers_missing": [],
        }

    def run(self, batch: np.ndarray) -> np.ndarray:
        index = self._input["index"]
        if self.dynamic and self.interpreter.get_input_details()[0]["shape"][0] != len(batch):
            self.interpreter.resize_tensor_input(index, [len(batch), *self._input["shape"][1:]])
            self.interpreter.allocate_tensors()
        if self._in_q is not None:
            dtype, scale, zero_point = self._in_q
            info = np.iinfo(dtype)
            batch = np.clip(np.round(batch / scale) + zero_point, info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(index, batch)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if self._out_q is not None:
            _, scale, zero_point = self._out_q
            out = (out.astype(np.float32) - zero_point) * scale
        return np.asarray(out, np.float32).reshape(len(batch), -1)
