"""PyTorch model → the target runtime's file: ONNX (QDQ), OpenVINO IR, TFLite.

The int8 input is the PT2E *converted* model (quantize/dequantize ops around float ops, BN folded):
each runtime's converter turns those patterns into its integer kernels. The float input (``--float``
baselines) is the eager student. Both are exported at batch 1 unless ``dynamic_batch``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ConversionError
from edgekd.quant.spec import TargetSpec
from edgekd.runtime.loaders import METADATA_KEY

log = logging.getLogger(__name__)
MAX_BATCH = 4096


def _example(spec: PreprocessSpec) -> torch.Tensor:
    h, w = spec.size
    return torch.randn(1, 3, h, w)


def _dynamic(dynamic_batch: bool):
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if dynamic_batch else None


def export_onnx(
    model: nn.Module, target: TargetSpec, path: Path, spec: PreprocessSpec, dynamic_batch: bool = False
) -> Path:
    """QDQ ONNX via the dynamo exporter, preprocessing recorded in the model's metadata."""
    import onnx

    try:
        program = torch.onnx.export(
            model,
            (_example(spec),),
            dynamo=True,
            opset_version=target.converter.opset or 18,
            dynamic_shapes=_dynamic(dynamic_batch),
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types; all mean "could not export"
        raise ConversionError(f"ONNX export failed: {exc}") from exc
    proto = program.model_proto
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(spec.to_dict()))
    onnx.save(proto, str(path))
    return path


def export_openvino(
    model: nn.Module, target: TargetSpec, path: Path, spec: PreprocessSpec, dynamic_batch: bool = False
) -> Path:
    """OpenVINO IR from the ExportedProgram (weights not folded: every conv then runs in int8)."""
    import openvino as ov

    try:
        program = torch.export.export(model, (_example(spec),), dynamic_shapes=_dynamic(dynamic_batch))
        ov_model = ov.convert_model(program)
        h, w = spec.size
        # The IR from an ExportedProgram leaves the input shape open; pin it like the other targets.
        ov_model.reshape({0: [-1 if dynamic_batch else 1, 3, h, w]})
    except Exception as exc:
        raise ConversionError(f"OpenVINO conversion failed: {exc}") from exc
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return path


def export_tflite(
    model: nn.Module,
    target: TargetSpec,
    path: Path,
    spec: PreprocessSpec,
    dynamic_batch: bool = False,
    quantized: bool = True,
) -> Path:
    """TFLite through litert-torch; quantized models carry the QAT scales (the target's quantizer)."""
    if dynamic_batch:
        raise ConversionError("TFLite artifacts have a static batch; drop --dynamic-batch for tflite")
    try:
        import litert_torch
        from litert_torch.quantize.quant_config import QuantConfig
    except ImportError as exc:
        raise ConversionError(
            f"TFLite conversion needs litert-torch: pip install 'edgekd[tflite]' ({exc})"
        ) from None
    from edgekd.quant.quantizers import build_quantizer

    quantizer = build_quantizer(target, is_qat=False)
    quantizer = getattr(quantizer, "base", quantizer)  # litert reads its own PT2EQuantizer's config
    config = QuantConfig(pt2e_quantizer=quantizer) if quantized else None
    try:
        edge = litert_torch.convert(model, (_example(spec),), quant_config=config)
        edge.export(str(path))
    except Exception as exc:
        raise ConversionError(f"TFLite conversion failed: {exc}") from exc
    return path


def export_artifact(
    model: nn.Module,
    target: TargetSpec,
    out_dir: Path,
    spec: PreprocessSpec,
    name: str,
    quantized: bool,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``out_dir/<name><suffix>`` with the format of ``target``'s runtime and return its path."""
    from edgekd.formats import get_format

    fmt = get_format(target.runtime)
    out_dir.mkdir(parents=True, exist_ok=True)
    return fmt.export(model, target, out_dir / f"{name}{fmt.suffix}", spec, dynamic_batch, quantized)
