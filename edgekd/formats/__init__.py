"""Artifact formats: one module per format holds everything edgekd does with it, one registry names them.

=============  =========  ==========================  ==================================================
format         suffix     runtime (profiles)          also typed as
=============  =========  ==========================  ==================================================
``onnx``       ``.onnx``  ONNX Runtime (MLAS)         ``onnxruntime``, ``ort``, ``onnx-vnni``
``openvino``   ``.xml``   OpenVINO CPU plugin         ``ov``, ``ir``, ``openvino-vnni``
``tflite``     ``.tflite``  LiteRT (XNNPACK)          ``litert``, ``ai_edge_litert``
=============  =========  ==========================  ==================================================

Each :class:`ArtifactFormat` carries: ``export`` (PT2E/float model → file), ``ptq`` (the runtime's own
post-training quantizer), ``int8_share`` (how much of the network the runtime runs in int8), ``embedder``
(the file as an :class:`~edgekd.runtime.Embedder`), the bench hooks (``prepare`` a file for a bare
runtime, its ``preprocess`` contract, the roofline ``op_list``) and the device runner (``backend``: a
self-contained ``edgekd/bench/<backend>.py`` shipped to devices, which need only numpy and ``module``).
``convert``, ``eval``/``runtime`` and ``bench`` all look formats up here with :func:`get_format`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd.errors import UnsupportedTargetError, did_you_mean


@dataclass(frozen=True)
class ArtifactFormat:
    name: str  # what users type for --target (and the profile runtimes' format)
    suffix: str
    runtime: str  # profile runtime name (targets/profiles: runtimes[].runtime)
    module: str  # importable module a machine needs to run the artifact
    backend: str  # bench runner file edgekd/bench/<backend>.py, self-contained (numpy + module)
    aliases: tuple[str, ...]
    export: Callable[..., Path]  # (model, target, path, spec, dynamic_batch, quantized) -> path
    ptq: Callable[..., Path]  # (float_model, target, out_dir, spec, calib, dynamic_batch) -> path
    int8_share: Callable[..., Any]  # (path, **options) -> Int8ShareReport
    embedder: Callable[..., Any]  # (path, spec | None, threads, arch) -> Embedder
    prepare: Callable[[Path, Path], tuple[Path, list[str]]]  # (path, workdir) -> (file to run, notes)
    preprocess: Callable[[Path, str | None], Any]  # (path, --preprocess or None) -> PreprocessSpec
    op_list: Callable[[Path, int], list[Any]]  # (path, batch) -> [OpCost] for the roofline


_MODULES = ("edgekd.formats.onnx", "edgekd.formats.openvino", "edgekd.formats.tflite")


def formats() -> list[ArtifactFormat]:
    """Every format, in table order (each module is imported on first use only: it imports nothing heavy)."""
    return [importlib.import_module(m).FORMAT for m in _MODULES]


def _keys() -> dict[str, ArtifactFormat]:
    keys: dict[str, ArtifactFormat] = {}
    for fmt in formats():
        for key in (fmt.name, fmt.suffix, fmt.runtime, *fmt.aliases):
            keys[key.lower()] = fmt
    return keys


def get_format(key: str | Path) -> ArtifactFormat:
    """The format of a name users type (``tflite``, ``litert``, ``onnx-vnni``), a suffix (``.xml``) or a
    file path (by its suffix); anything else is an :class:`UnsupportedTargetError` listing the names."""
    keys = _keys()
    text = str(key)
    candidates = [text.lower()]
    if isinstance(key, Path) or "/" in text or "." in text:
        candidates.append(Path(text).suffix.lower())
    for candidate in candidates:
        if candidate in keys:
            return keys[candidate]
    names = [f.name for f in formats()]
    suffixes = [f.suffix for f in formats()]
    raise UnsupportedTargetError(
        f"unknown artifact format {text!r}: known formats {', '.join(names)} (files {', '.join(suffixes)})."
        + did_you_mean(text.lower(), list(keys))
    )


def manifest_preprocess(path: Path, override: str | None) -> Any:
    """The input contract of an IR or a ``.tflite``: ``--preprocess`` when given, else the manifest.json
    that ``edgekd convert`` wrote beside it (these formats have no metadata field of their own)."""
    from edgekd.data.preprocess import PreprocessSpec
    from edgekd.runtime.loaders import artifact_preprocess

    return artifact_preprocess(path, PreprocessSpec.parse(override) if override else None)


def suffixes() -> list[str]:
    return [f.suffix for f in formats()]


__all__ = ["ArtifactFormat", "formats", "get_format", "manifest_preprocess", "suffixes"]
