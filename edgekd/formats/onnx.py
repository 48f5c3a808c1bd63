"""ONNX artifacts (QDQ, fused by ONNX Runtime into QLinearConv/QGemm): what edgekd does with them.

Export: the dynamo exporter (``convert/exporters.py``); PTQ: ORT's ``quantize_static`` with the target's
weight rule (``reduce_range`` = 7-bit weights for a portable target); int8 share: ORT's optimized graph;
runtime: ONNX Runtime's CPU EP; bench runner: ``bench/device_ort.py``; roofline: ``bench/roofline.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.formats import ArtifactFormat


def export(
    model: Any, target: Any, path: Path, spec: Any, dynamic_batch: bool = False, quantized: bool = True
):
    from edgekd.convert.exporters import export_onnx

    return export_onnx(model, target, path, spec, dynamic_batch)


def ptq(float_model: Any, target: Any, out: Path, spec: Any, calib: np.ndarray, dynamic_batch: bool) -> Path:
    """ORT ``quantize_static`` of the exported float model; 7-bit weights (``reduce_range``) when the
    target is portable, the tool's 8-bit default otherwise."""
    from edgekd.convert.ptq import onnx_ptq
    from edgekd.isa import MAX_EXACT_WEIGHT

    (out / "float_src").mkdir(parents=True, exist_ok=True)
    float_path = export(float_model, target, out / "float_src" / "model.onnx", spec, dynamic_batch, False)
    portable = target.weight_bound <= MAX_EXACT_WEIGHT
    return onnx_ptq(
        float_path,
        out / "model.onnx",
        calib,
        spec,
        activation_type=target.activations.dtype,
        reduce_range=portable,
    )


def int8_share(path: Path, **options: Any):
    from edgekd.convert.int8_share import onnx_int8_share

    return onnx_int8_share(path, **options)


def embedder(path: Path, spec: Any, threads: int | None, arch: str | None):
    from edgekd.runtime.loaders import load_onnx_embedder

    return load_onnx_embedder(path, spec, threads, arch)


def prepare(path: Path, workdir: Path) -> tuple[Path, list[str]]:
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


def preprocess(path: Path, override: str | None):
    from edgekd.data.preprocess import PreprocessSpec
    from edgekd.runtime.loaders import onnx_preprocess

    return onnx_preprocess(path, PreprocessSpec.parse(override) if override else None)


def op_list(path: Path, batch: int):
    from edgekd.bench.roofline import onnx_ops

    return onnx_ops(path, batch)


FORMAT = ArtifactFormat(
    name="onnx",
    suffix=".onnx",
    runtime="onnxruntime",
    module="onnxruntime",
    backend="device_ort",
    aliases=("ort", "onnx-vnni"),
    export=export,
    ptq=ptq,
    int8_share=int8_share,
    embedder=embedder,
    prepare=prepare,
    preprocess=preprocess,
    op_list=op_list,
)
