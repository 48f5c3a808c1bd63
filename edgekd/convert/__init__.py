"""``edgekd convert`` building blocks: parity against the PyTorch model, the share of multiply-adds each
runtime really executes in int8, the manifest written beside every artifact, and PTQ baselines made with
the runtimes' own tools (ONNX Runtime ``quantize_static``, NNCF).

Each module imports its runtime lazily, so ``import edgekd.convert`` stays cheap.
"""

from __future__ import annotations

from edgekd.convert.images import face_images
from edgekd.convert.int8_share import Int8ShareReport, LayerMacs, int8_share
from edgekd.convert.manifest import Manifest, read_manifest, tool_versions, write_manifest
from edgekd.convert.parity import ParityReport, check_parity

__all__ = [
    "Int8ShareReport",
    "LayerMacs",
    "Manifest",
    "ParityReport",
    "check_parity",
    "face_images",
    "int8_share",
    "read_manifest",
    "tool_versions",
    "write_manifest",
]
