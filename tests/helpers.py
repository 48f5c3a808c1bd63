"""Small builders for tests: tiny ONNX face models and LFW-layout folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekd.data.image import encode_jpeg


def tiny_onnx(
    path: Path,
    weights: np.ndarray,
    weights_as_input: bool = False,
    batch: int | str = "N",
    metadata=None,
    nhwc: bool = False,
) -> Path:
    """(N,3,112,112) → GlobalAveragePool → (N,3) @ W (3,D): a linear "face model" with known output.
    ``nhwc``: the input is (N,112,112,3) (TFLite's layout), transposed inside."""
    d = weights.shape[1]
    w = numpy_helper.from_array(weights.astype(np.float32), "W")
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [2])
    nodes = [
        helper.make_node("GlobalAveragePool", ["nchw" if nhwc else "data"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["emb"]),
    ]
    if nhwc:
        nodes.insert(0, helper.make_node("Transpose", ["data"], ["nchw"], perm=[0, 3, 1, 2]))
    dims = [batch, 112, 112, 3] if nhwc else [batch, 3, 112, 112]
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, dims)]
    if weights_as_input:  # the defect of OpenCV zoo's *_int8bq.onnx: stale weight names and initializers
        inputs += [helper.make_tensor_value_info("W_float", TensorProto.FLOAT, list(weights.shape)), shape]
    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [batch, d])],
        initializer=[w, numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def make_lfw(root: Path, header: str, lines: list[str], people: dict[str, int], seed: int = 0) -> Path:
    """Write an LFW-layout folder (``people`` = name → image count) and its pairs.txt."""
    rng = np.random.default_rng(seed)
    for name, count in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            img = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            (root / name / f"{name}_{i:04d}.jpg").write_bytes(encode_jpeg(img))
    (root / "pairs.txt").write_text("\n".join([header, *lines]) + "\n")
    return root
