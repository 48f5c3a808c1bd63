"""What bench needs to know per artifact format; :data:`edgekd.bench.REGISTRY` maps file suffixes here.

A format names the profile runtime that runs it, the Python module a machine needs for that, the
self-contained backend file shipped with the runner (``edgekd/bench/<backend>.py``), and host-side hooks:
``prepare`` (make the file runnable by the bare runtime, without changing its computation), ``preprocess``
(the input contract) and ``op_list`` (the roofline's op reader: ``roofline.onnx_ops``,
``ops_openvino.openvino_ops``, ``ops_tflite.tflite_ops``).

Adding OpenVINO IR or TFLite is one backend file (``device_openvino.py``: ``Model(path, threads,
providers)`` with ``run``, ``max_batch``, ``info``), one :class:`ArtifactFormat` below and one registry line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekd.bench.roofline import OpCost
from edgekd.data.preprocess import PreprocessSpec


@dataclass(frozen=True)
class ArtifactFormat:
    name: str
    runtime: str  # profile runtime name (targets/profiles: runtimes[].runtime)
    module: str  # importable module the machine running it needs
    backend: str  # bundle file edgekd/bench/<backend>.py, self-contained
    prepare: Callable[[Path, Path], tuple[Path, list[str]]]
    preprocess: Callable[[Path, str | None], PreprocessSpec]
    op_list: Callable[[Path, int], list[OpCost]] | None = None


def _prepare_onnx(path: Path, workdir: Path) -> tuple[Path, list[str]]:
    """Drop graph inputs that are weights or unused (OpenCV zoo's ``*_int8bq.onnx`` declares 174) into a
    copy in ``workdir``, so a bare onnxruntime can feed the image alone; returns (file to run, notes)."""
    import onnx

    from edgekd.runtime.ort_backend import drop_spurious_inputs, load_onnx

    model = load_onnx(path)
    dropped = drop_spurious_inputs(model)
    if not dropped:
        return path, []
    fixed = workdir / "model.onnx"
    onnx.save(model, str(fixed))
    return fixed, [
        f"ran a copy without its {dropped} graph inputs that are weights or unused (same computation)"
    ]


def _onnx_preprocess(path: Path, override: str | None) -> PreprocessSpec:
    from edgekd.runtime.loaders import onnx_preprocess

    return onnx_preprocess(path, PreprocessSpec.parse(override) if override else None)


def _onnx_op_list(path: Path, batch: int) -> list[OpCost]:
    from edgekd.bench.roofline import onnx_ops

    return onnx_ops(path, batch)


ONNX = ArtifactFormat(
    name="onnx",
    runtime="onnxruntime",
    module="onnxruntime",
    backend="device_ort",
    prepare=_prepare_onnx,
    preprocess=_onnx_preprocess,
    op_list=_onnx_op_list,
)


def _identity(path: Path, workdir: Path) -> tuple[Path, list[str]]:
    """IR and TFLite files run as they are (an IR's ``.bin`` beside its ``.xml``)."""
    return path, []


def _manifest_preprocess(path: Path, override: str | None) -> PreprocessSpec:
    from edgekd.runtime.loaders import artifact_preprocess

    return artifact_preprocess(path, PreprocessSpec.parse(override) if override else None)


def _openvino_op_list(path: Path, batch: int) -> list[OpCost]:
    from edgekd.bench.ops_openvino import openvino_ops

    return openvino_ops(path, batch)


def _tflite_op_list(path: Path, batch: int) -> list[OpCost]:
    from edgekd.bench.ops_tflite import tflite_ops

    return tflite_ops(path, batch)


OPENVINO = ArtifactFormat(
    name="openvino",
    runtime="openvino",
    module="openvino",
    backend="device_openvino",
    prepare=_identity,
    preprocess=_manifest_preprocess,
    op_list=_openvino_op_list,
)


TFLITE = ArtifactFormat(
    name="tflite",
    runtime="tflite",
    module="ai_edge_litert",
    backend="device_litert",
    prepare=_identity,
    preprocess=_manifest_preprocess,
    op_list=_tflite_op_list,
)
