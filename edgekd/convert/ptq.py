"""PTQ baselines made with each runtime's own tool, to compare QAT artifacts against.

* ONNX: ``onnxruntime.quantization.quantize_static`` in QDQ format, **uint8 activations** and int8
  per-channel symmetric weights. uint8 activations matter: with int8 activations ONNX Runtime 1.31 leaves
  15 of MobileFaceNet's 51 convs (and the residual Adds) in float, with uint8 it fuses all of them into
  QLinearConv/QLinearAdd (docs/dev/qat_toolchain.md §5).
* OpenVINO: ``nncf.quantize`` on an ``ov.Model`` (the CPU plugin then runs every conv in u8/i8).

Calibration images are preprocessed by the model's own :class:`PreprocessSpec`, exactly as the
embedder will at inference time. TFLite PTQ arrives with ``edgekd.quant`` (litert-torch PT2E).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ConversionError, DataError, ModelError

if TYPE_CHECKING:
    import onnx
    import openvino as ov

ORT_ACTIVATION_TYPES = ("uint8", "int8")
ORT_CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 16  # images per calibration step when the model's batch is dynamic


def calibration_batches(images: np.ndarray, spec: PreprocessSpec, batch: int) -> Iterator[np.ndarray]:
    """Preprocessed float32 batches of exactly ``batch`` images (a short last batch is dropped unless it is
    the only one, then it is padded by repetition, so static-batch models can always be calibrated)."""
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) == 0:
        raise DataError(f"calibration needs (N, H, W, 3) uint8 images, got {images.dtype} {images.shape}")
    if len(images) < batch:
        images = np.concatenate([images, np.resize(images, (batch - len(images), *images.shape[1:]))])
    for start in range(0, len(images) - batch + 1, batch):
        yield spec.apply(images[start : start + batch])


def _onnx_calibration_reader(images: np.ndarray, spec: PreprocessSpec, input_name: str, batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class FaceCalibrationReader(CalibrationDataReader):
        """Feeds preprocessed face crops to ORT's calibrator; ``rewind`` lets it make a second pass."""

        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch_data = next(self._batches, None)
            return None if batch_data is None else {input_name: batch_data}

        def rewind(self) -> None:
            self._batches = calibration_batches(images, spec, batch)

    return FaceCalibrationReader()


def onnx_ptq(
    float_model: str | Path,
    out: str | Path,
    images: np.ndarray,
    spec: PreprocessSpec | None = None,
    activation_type: str = "uint8",
    per_channel: bool = True,
    calibrate_method: str = "minmax",
    reduce_range: bool = False,
) -> Path:
    """Quantize a float ONNX face model with ORT's ``quantize_static`` (QDQ); returns ``out``.

    ``reduce_range`` quantizes weights to 7 bits ([-64, 64]): ORT's own answer to the int16 pair
    saturation of its AVX2 kernels, which makes the artifact exact on every CPU (:mod:`edgekd.isa`).

    ``spec`` defaults to what the float model declares; it is written into the output's metadata, so
    the artifact loads with :func:`edgekd.runtime.load_embedder` without ``--preprocess``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekd.runtime.loaders import METADATA_KEY, onnx_preprocess
    from edgekd.runtime.ort_backend import load_onnx

    float_model, out = Path(float_model), Path(out)
    _check_choice("activation_type", activation_type, ORT_ACTIVATION_TYPES)
    _check_choice("calibrate_method", calibrate_method, ORT_CALIBRATION_METHODS)
    model = load_onnx(float_model)
    spec = onnx_preprocess(float_model, spec)
    graph_input = model.graph.input[0]
    dim0 = graph_input.type.tensor_type.shape.dim[0]
    static = dim0.HasField("dim_value") and dim0.dim_value > 0
    batch = dim0.dim_value if static else max(1, min(CALIBRATION_BATCH, len(images)))
    reader = _onnx_calibration_reader(images, spec, graph_input.name, batch)
    out.parent.mkdir(parents=True, exist_ok=True)
    method = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}[calibrate_method]
    try:
        quantize_static(
            model,
            out,
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            calibrate_method=getattr(CalibrationMethod, method),
        )
    except Exception as exc:
        raise ConversionError(f"onnxruntime quantize_static failed on {float_model}: {exc}") from exc
    quantized = onnx.load(str(out))
    _set_metadata(quantized, METADATA_KEY, json.dumps(spec.to_dict()))
    onnx.save(quantized, str(out))
    return out


def openvino_ptq(
    model: str | Path | ov.Model,
    images: np.ndarray,
    spec: PreprocessSpec,
    out: str | Path | None = None,
    preset: str = "performance",
    overflow_fix: str = "first_layer_only",
) -> ov.Model:
    """Quantize an OpenVINO model with ``nncf.quantize`` on preprocessed faces; save IR to ``out`` if given.

    ``preset="performance"`` (symmetric activations) is NNCF's CPU default; ``"mixed"`` uses asymmetric
    activations. ``overflow_fix`` is NNCF's answer to the int16 pair saturation of oneDNN's non-VNNI
    kernels: ``"enable"`` quantizes every dense conv/FC weight to 7 bits (exact on every CPU),
    ``"first_layer_only"`` (NNCF's default) only the first, ``"disable"`` none. The IR is saved with
    ``compress_to_fp16=False``: fp16 compression of the float parts would add an error that parity
    would then blame on quantization.
    """
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    from edgekd.runtime.openvino_backend import read_openvino_model

    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    _check_choice("preset", preset, tuple(presets))
    _check_choice("overflow_fix", overflow_fix, tuple(f.value for f in OverflowFix))
    if isinstance(model, str | Path):
        model = read_openvino_model(model)
    dim0 = model.inputs[0].get_partial_shape()[0]
    batch = dim0.get_length() if dim0.is_static else 1
    batches = list(calibration_batches(images, spec, batch))
    try:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            preset=presets[preset],
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(batches),
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix)),
        )
    except Exception as exc:
        raise ConversionError(f"nncf.quantize failed on {model.get_friendly_name()}: {exc}") from exc
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(out), compress_to_fp16=False)
    return quantized


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ModelError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    props = model.metadata_props
    for prop in props:
        if prop.key == key:
            prop.value = value
            return
    props.add(key=key, value=value)
