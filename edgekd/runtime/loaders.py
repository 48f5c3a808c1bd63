"""Loaders from a model file to an :class:`Embedder`; each decides the preprocessing it needs."""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.data.preprocess import PRESETS, PreprocessSpec
from edgekd.errors import ModelError
from edgekd.runtime.base import Embedder

METADATA_KEY = "edgekd.preprocess"  # ONNX metadata_props entry written by edgekd's exporters
MANIFEST_NAME = "manifest.json"  # written beside every artifact by `edgekd convert`


def declared_onnx_preprocess(path: Path) -> PreprocessSpec | None:
    """The spec embedded by edgekd, in a manifest.json beside the file, or of a known published file."""
    import onnx

    from edgekd.runtime.known import known_preprocess

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return PreprocessSpec.from_dict(json.loads(prop.value))
    return manifest_preprocess(path) or known_preprocess(path)


def manifest_preprocess(path: Path) -> PreprocessSpec | None:
    """The ``preprocess`` entry of the ``manifest.json`` beside ``path``, if it describes this file.

    A manifest naming another ``artifact`` does not apply: a folder holding a float and an int8 model
    must not lend one's preprocessing to the other by accident.
    """
    manifest = path.parent / MANIFEST_NAME
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{manifest} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or "preprocess" not in data:
        return None
    if data.get("artifact") not in (None, path.name):
        return None
    return PreprocessSpec.from_dict(data["preprocess"])


PREPROCESS_HINT = (
    f"--preprocess with a preset ({', '.join(PRESETS)}: raw255 = RGB 0..255, arcface = (x-127.5)/127.5, "
    "imagenet = ImageNet mean/std), optionally with overrides, or key=value items alone: e.g. "
    "'arcface,order=BGR' or 'mean=127.5,std=128' (keys: mean, std, order, layout, size)"
)


def artifact_preprocess(path: Path, spec: PreprocessSpec | None = None) -> PreprocessSpec:
    """``spec`` if given, else the manifest's: IR and TFLite files have no metadata slot edgekd uses.
    The layout follows the model's input shape where it is unambiguous."""
    spec = spec or manifest_preprocess(path)
    if spec is None:
        raise ModelError(
            f"{path} does not say how to preprocess its input: put the {MANIFEST_NAME} written by "
            f"`edgekd convert` beside it, or pass {PREPROCESS_HINT}"
        )
    return spec.with_input_shape(input_shape(path))


def onnx_preprocess(path: Path, spec: PreprocessSpec | None = None) -> PreprocessSpec:
    """``spec`` if given, else what the file declares; a file that declares nothing is an error. The
    layout follows the model's input shape where it is unambiguous."""
    spec = spec or declared_onnx_preprocess(path)
    if spec is None:
        raise ModelError(f"{path} does not say how to preprocess its input: pass {PREPROCESS_HINT}")
    return spec.with_input_shape(input_shape(path))


def input_shape(path: Path) -> list[object]:
    """The first input's shape as the file declares it (``str``/``None`` for symbolic dims); [] if unknown."""
    try:
        if path.suffix == ".onnx":
            import onnx

            graph = onnx.load(str(path), load_external_data=False).graph
            dims = graph.input[0].type.tensor_type.shape.dim if graph.input else []
            return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
        if path.suffix == ".xml":
            import openvino as ov

            shape = ov.Core().read_model(str(path)).inputs[0].get_partial_shape()
            return [d.get_length() if d.is_static else None for d in shape]
        if path.suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            return [int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"]]
    except Exception:  # unreadable files fail later with the loader's own error
        return []
    return []


def load_onnx_embedder(
    path: Path, spec: PreprocessSpec | None, threads: int | None, arch: str | None
) -> Embedder:
    from edgekd.runtime.ort_backend import OrtEmbedder

    return OrtEmbedder(path, onnx_preprocess(path, spec), threads)


def load_torch_embedder(
    path: Path, spec: PreprocessSpec | None, threads: int | None, arch: str | None
) -> Embedder:
    from edgekd.models import create_model, default_preprocess, detect_architecture, load_state_dict_file
    from edgekd.runtime.torch_backend import TorchEmbedder

    state = load_state_dict_file(path)
    arch = arch or detect_architecture(state)
    model = create_model(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit architecture '{arch}': {exc}") from exc
    return TorchEmbedder(
        model, spec or default_preprocess(arch), name=f"{path.name} ({arch})", threads=threads
    )


def load_openvino_embedder(
    path: Path, spec: PreprocessSpec | None, threads: int | None, arch: str | None
) -> Embedder:
    from edgekd.runtime.openvino_backend import OpenVinoEmbedder

    return OpenVinoEmbedder(path, artifact_preprocess(path, spec), threads)


def load_litert_embedder(
    path: Path, spec: PreprocessSpec | None, threads: int | None, arch: str | None
) -> Embedder:
    from edgekd.runtime.litert_backend import LiteRtEmbedder

    return LiteRtEmbedder(path, artifact_preprocess(path, spec), threads)
