"""ONNX Runtime backend, for ONNX teachers (SFace) and ONNX artifacts.

Some published face models (OpenCV zoo's ``*_int8bq.onnx``) declare their weights as graph inputs too:
145 of them are also initializers, 29 are stale names of float weights that no node reads any more
(the graph dequantizes ``*_quantized`` initializers instead). ORT insists that the caller feed the
stale ones; dropping inputs that an initializer backs or that nothing consumes makes the file runnable
with only the image, the computation unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError
from edgekd.runtime.base import Embedder

log = logging.getLogger(__name__)


def drop_spurious_inputs(model: onnx.ModelProto) -> int:
    """Remove graph inputs backed by an initializer or read by no node (in place); returns the count."""
    initializers = {t.name for t in model.graph.initializer}
    consumed = {name for node in model.graph.node for name in node.input}
    keep = [i for i in model.graph.input if i.name not in initializers and i.name in consumed]
    dropped = len(model.graph.input) - len(keep)
    if dropped:
        del model.graph.input[:]
        model.graph.input.extend(keep)
    return dropped


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load an ONNX file with errors that name it."""
    if not path.is_file():
        raise ModelError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError/ValueError/… for garbage
        raise ModelError(f"{path} is not a readable ONNX model: {exc}") from exc


def relax_output_batch(model: onnx.ModelProto) -> None:
    """Give outputs the input's symbolic batch dim when the file declares a dynamic input but a fixed
    output batch (the fp32 SFace export does); ORT would otherwise warn on every batched run."""
    in_dim = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    if not in_dim or not in_dim[0].dim_param:
        return
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = in_dim[0].dim_param


class OrtEmbedder(Embedder):
    """An ONNX face model on ONNX Runtime's CPU provider with a fixed intra-op thread count
    (:meth:`to_cuda` moves a float teacher to a GPU where onnxruntime-gpu is installed)."""

    def __init__(self, path: str | Path, input_spec: PreprocessSpec, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        model = load_onnx(path)
        dropped = drop_spurious_inputs(model)
        if dropped:
            log.info("%s: dropped %d graph inputs that are weights or unused", path.name, dropped)
        relax_output_batch(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # errors only: shape-inference chatter is not the user's problem
        self._model, self._opts = model.SerializeToString(), opts  # kept to re-open on a GPU
        try:
            self.session = ort.InferenceSession(self._model, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ModelError(f"{path}: expected one image input after fixing, found {names}")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.max_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.name = path.name
        self.input_spec = input_spec
        out_shape = self.session.get_outputs()[0].shape
        self.embedding_size = out_shape[-1] if isinstance(out_shape[-1], int) else 0

    def to_cuda(self, index: int = 0) -> bool:
        """Re-open on ONNX Runtime's CUDA provider (GPU ``index``) when this onnxruntime build has it
        (onnxruntime-gpu); False, and still on the CPU, otherwise. For float models such as a teacher:
        an int8 artifact's numbers are those of the CPU it ships to, not a GPU's."""
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return False
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(self._model, self._opts, providers=providers)
        return "CUDAExecutionProvider" in self.session.get_providers()

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {self.input_name: batch})[:1]
        return np.asarray(out, np.float32).reshape(len(batch), -1)
