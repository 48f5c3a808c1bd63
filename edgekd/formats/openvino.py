"""OpenVINO IR artifacts (``.xml`` + ``.bin``, run by the CPU plugin): what edgekd does with them.

Export: ``ov.convert_model`` of the ExportedProgram (``convert/exporters.py``); PTQ: NNCF with the
target's weight rule (``overflow_fix="enable"`` = 7-bit weights for a portable target); int8 share: the
compiled model's runtime precisions; bench runner: ``bench/device_openvino.py``; roofline:
``bench/ops_openvino.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.formats import ArtifactFormat, manifest_preprocess


def export(
    model: Any, target: Any, path: Path, spec: Any, dynamic_batch: bool = False, quantized: bool = True
):
    from edgekd.convert.exporters import export_openvino

    return export_openvino(model, target, path, spec, dynamic_batch)


def ptq(float_model: Any, target: Any, out: Path, spec: Any, calib: np.ndarray, dynamic_batch: bool) -> Path:
    """NNCF on the exported float IR; ``overflow_fix="enable"`` (7-bit weights) for a portable target."""
    from edgekd.convert.ptq import openvino_ptq
    from edgekd.isa import MAX_EXACT_WEIGHT

    (out / "float_src").mkdir(parents=True, exist_ok=True)
    float_path = export(float_model, target, out / "float_src" / "model.xml", spec, dynamic_batch, False)
    fix = "enable" if target.weight_bound <= MAX_EXACT_WEIGHT else "first_layer_only"
    openvino_ptq(float_path, calib, spec, out / "model.xml", overflow_fix=fix)
    return out / "model.xml"


def int8_share(path: Path, **options: Any):
    from edgekd.convert.int8_share import openvino_int8_share

    return openvino_int8_share(path, **options)


def embedder(path: Path, spec: Any, threads: int | None, arch: str | None):
    from edgekd.runtime.loaders import load_openvino_embedder

    return load_openvino_embedder(path, spec, threads, arch)


def prepare(path: Path, workdir: Path) -> tuple[Path, list[str]]:
    """An IR runs as it is (its ``.bin`` beside its ``.xml``)."""
    return path, []


def op_list(path: Path, batch: int):
    from edgekd.bench.ops_openvino import openvino_ops

    return openvino_ops(path, batch)


FORMAT = ArtifactFormat(
    name="openvino",
    suffix=".xml",
    runtime="openvino",
    module="openvino",
    backend="device_openvino",
    aliases=("ov", "ir", "openvino-vnni"),
    export=export,
    ptq=ptq,
    int8_share=int8_share,
    embedder=embedder,
    prepare=prepare,
    preprocess=manifest_preprocess,
    op_list=op_list,
)
