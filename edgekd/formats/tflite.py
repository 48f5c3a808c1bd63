"""TFLite artifacts (run by LiteRT, XNNPACK by default): what edgekd does with them.

Export: litert-torch, carrying the QAT scales (``convert/exporters.py``); PTQ: litert-torch's own PT2E
quantizer calibrated in PyTorch (the path LiteRT documents); int8 share: the interpreter's op list;
bench runner: ``bench/device_litert.py``; roofline: ``bench/ops_tflite.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.formats import ArtifactFormat, manifest_preprocess


def export(
    model: Any, target: Any, path: Path, spec: Any, dynamic_batch: bool = False, quantized: bool = True
):
    from edgekd.convert.exporters import export_tflite

    return export_tflite(model, target, path, spec, dynamic_batch, quantized)


def ptq(float_model: Any, target: Any, out: Path, spec: Any, calib: np.ndarray, dynamic_batch: bool) -> Path:
    """The target's PT2E quantizer (litert-torch's), calibrated on ``calib``, converted, exported."""
    import torch

    from edgekd.quant import calibrate, convert, example_input, prepare

    prepared = prepare(float_model, target, example_input(batch=2), qat=False)
    calibrate(prepared, torch.from_numpy(spec.apply(calib)).split(32))
    out.mkdir(parents=True, exist_ok=True)
    return export(convert(prepared, target), target, out / "model.tflite", spec, dynamic_batch, True)


def int8_share(path: Path, **options: Any):
    from edgekd.convert.int8_share import tflite_int8_share

    return tflite_int8_share(path, **options)


def embedder(path: Path, spec: Any, threads: int | None, arch: str | None):
    from edgekd.runtime.loaders import load_litert_embedder

    return load_litert_embedder(path, spec, threads, arch)


def prepare(path: Path, workdir: Path) -> tuple[Path, list[str]]:
    """A ``.tflite`` runs as it is."""
    return path, []


def op_list(path: Path, batch: int):
    from edgekd.bench.ops_tflite import tflite_ops

    return tflite_ops(path, batch)


FORMAT = ArtifactFormat(
    name="tflite",
    suffix=".tflite",
    runtime="tflite",
    module="ai_edge_litert",
    backend="device_litert",
    aliases=("litert", "ai_edge_litert"),
    export=export,
    ptq=ptq,
    int8_share=int8_share,
    embedder=embedder,
    prepare=prepare,
    preprocess=manifest_preprocess,
    op_list=op_list,
)
