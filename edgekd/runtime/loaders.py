"""Loaders from a model file to an :class:`Embedder`; each decides the preprocessing it needs."""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.data.preprocess import PRESETS, PreprocessSpec
from edgekd.errors import ModelError
from edgekd.runtime.base import Embedder

METADATA_KEY = "edgekd.preprocess"  # ONNX metadata_props entry written by edgekd's exporters


def declared_onnx_preprocess(path: Path) -> PreprocessSpec | None:
    """The spec embedded by edgekd, in a manifest.json beside the file, or of a known published file."""
    import onnx

    from edgekd.runtime.known import known_preprocess

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return PreprocessSpec.from_dict(json.loads(prop.value))
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if "preprocess" in data:
            return PreprocessSpec.from_dict(data["preprocess"])
    return known_preprocess(path)


def onnx_preprocess(path: Path, spec: PreprocessSpec | None = None) -> PreprocessSpec:
    """``spec`` if given, else what the file declares; a file that declares nothing is an error."""
    spec = spec or declared_onnx_preprocess(path)
    if spec is None:
        raise ModelError(
            f"{path} does not say how to preprocess its input: pass --preprocess with one of "
            f"{', '.join(PRESETS)} (raw255 = RGB 0..255, arcface = (x-127.5)/127.5, "
            "imagenet = ImageNet mean/std)"
        )
    return spec


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
