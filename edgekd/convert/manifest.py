"""``manifest.json``: what an artifact is, how to feed it, where it came from and how it was checked.

The runtime loaders read its ``preprocess`` entry (IR and TFLite files have no metadata slot that edgekd
uses), so ``edgekd eval --model artifact.xml`` needs no flags; the rest makes a result reproducible: the
source checkpoint's sha256, the tool versions that produced it, the input quantization parameters (for
callers feeding a full-integer model directly) and the parity / int8-share results of the conversion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ConfigError, ModelError
from edgekd.runtime.known import file_sha256
from edgekd.runtime.loaders import MANIFEST_NAME

FORMAT_VERSION = 1
# the packages whose versions decide an artifact's arithmetic
TOOLS = (
    "edgekd",
    "torch",
    "torchao",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "litert-torch",
    "ai-edge-litert",
)


@dataclass(frozen=True)
class Manifest:
    """The contents of ``manifest.json``; ``artifact`` is the file name it describes (same folder)."""

    target: str  # "onnx" | "openvino" | "tflite"
    artifact: str
    preprocess: PreprocessSpec
    embedding_size: int
    source_sha256: str | None = None
    input_quantization: dict[str, Any] | None = None  # {"dtype", "scale", "zero_point"}; None = float input
    tool_versions: dict[str, str | None] = field(default_factory=dict)
    parity: dict[str, Any] | None = None  # ParityReport.to_dict()
    int8_share: dict[str, Any] | None = None  # Int8ShareReport.to_dict()
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. quantization recipe, batch mode
    artifact_sha256: dict[str, str] | None = None  # {file name: sha256} of the artifact's files
    golden: dict[str, Any] | None = None  # edgekd.convert.golden.write_golden's entry

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "target": self.target,
            "artifact": self.artifact,
            "preprocess": self.preprocess.to_dict(),
            "embedding_size": self.embedding_size,
            "source_sha256": self.source_sha256,
            "input_quantization": self.input_quantization,
            "tool_versions": self.tool_versions,
            "parity": self.parity,
            "int8_share": self.int8_share,
            "extra": self.extra,
            "artifact_sha256": self.artifact_sha256,
            "golden": self.golden,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT_VERSION:
            raise ConfigError(
                f"manifest format {data.get('format')!r} is not supported (expected {FORMAT_VERSION})"
            )
        missing = {"target", "artifact", "preprocess", "embedding_size"} - set(data)
        if missing:
            raise ConfigError(f"manifest lacks {sorted(missing)}")
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["preprocess"] = PreprocessSpec.from_dict(data["preprocess"])
        return cls(**fields)


def tool_versions() -> dict[str, str | None]:
    """Installed versions of :data:`TOOLS` (``None`` for a package that is not installed)."""
    from edgekd.info import package_versions

    versions = package_versions()
    return {name: versions.get(name) for name in TOOLS}


def checkpoint_sha256(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    return file_sha256(path)


def write_manifest(manifest: Manifest, directory: str | Path) -> Path:
    """Write ``directory/manifest.json`` (one artifact per folder; see the loaders' ``artifact`` check)."""
    path = Path(directory) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(path: str | Path) -> Manifest:
    """Read the manifest of an artifact (``model.xml`` → ``manifest.json`` beside it) or a manifest file."""
    path = Path(path)
    if path.name != MANIFEST_NAME:
        path = (path if path.is_dir() else path.parent) / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"no {MANIFEST_NAME} at {path}")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return Manifest.from_dict(data)
