"""ONNX Runtime on the device, for the runner (self-contained: numpy and onnxruntime only).

``Model(path, threads, providers)`` opens a session the way the field's tools do (intra-op threads
fixed, one inter-op thread, sequential execution, all graph optimisations) with the profile's execution
providers that this onnxruntime build has, in the profile's order; ``run(batch)`` returns ``(N, D)``.
"""

from __future__ import annotations

import numpy as np

RUNTIME = "onnxruntime"  # the module a device needs: a missing one is reported, not a traceback


class Model:
    def __init__(self, path: str, threads: int, providers: list[str] | tuple[str, ...] = ()):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        available = ort.get_available_providers()
        wanted = list(providers) or ["CPUExecutionProvider"]
        chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, opts, providers=chosen)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected one image input, found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        first = inputs[0].shape[0]
        self.max_batch = first if isinstance(first, int) and first > 0 else None
        self.info = {
            "runtime": RUNTIME,
            "version": ort.__version__,
            "providers": self.session.get_providers(),
            "providers_missing": [p for p in wanted if p not in available],
        }

    def run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {self.input_name: batch})[:1]
        return np.asarray(out, np.float32).reshape(len(batch), -1)
