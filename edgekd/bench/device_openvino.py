"""OpenVINO on the device, for the runner (self-contained: numpy and openvino only).

``Model(path, threads, providers)`` compiles the IR ``.xml`` (its ``.bin`` beside it) on the CPU plugin
with ``threads`` inference threads, one stream, the latency hint and ``INFERENCE_PRECISION_HINT=f32``
(on CPUs with bf16 the plugin would otherwise run float layers in bf16; int8 layers are unaffected);
``providers`` is unused (the profile's OpenVINO device is the CPU). ``run(batch)`` returns ``(N, D)``.
"""

from __future__ import annotations

import numpy as np

RUNTIME = "openvino"  # the module a device needs: a missing one is reported, not a traceback


class Model:
    def __init__(self, path: str, threads: int, providers: list[str] | tuple[str, ...] = ()):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(path)
        if len(model.inputs) != 1:
            raise ValueError(f"expected one image input, found {len(model.inputs)}")
        config = {
            "INFERENCE_NUM_THREADS": int(threads),
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.request = core.compile_model(model, "CPU", config).create_infer_request()
        first = model.inputs[0].get_partial_shape()[0]
        self.max_batch = first.get_length() if first.is_static else None
        self.info = {"runtime": RUNTIME, "version": ov.__version__, "providers": ["CPU"]}
        self.info["providers_missing"] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: np.ascontiguousarray(batch)})
        return np.asarray(next(iter(out.values())), np.float32).reshape(len(batch), -1)
