"""Golden files: what an artifact must compute, carried beside it to the device.

Parity at convert time runs on the build host; the same ONNX/OpenVINO file computes another network on a
CPU with other int8 kernels (:mod:`edgekd.isa`), and a file can change on its way to a device. So
``convert`` writes, beside the artifact, 32 faces (``golden_faces.npy``: uint8 RGB, the runner
preprocesses them with the artifact's own spec) and the embeddings of the arithmetic the artifact targets
(``golden_embeddings.npy``: the integer twin of its deployment ISA for QAT, the float model for float
artifacts, the artifact itself on a deployment-ISA host for PTQ, which has no twin), plus the sha256 of
every artifact file in ``manifest.json``. ``edgekd bench`` checks the hash and the parity where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.convert.parity import ParityReport, compare_embeddings
from edgekd.errors import ConfigError
from edgekd.runtime.known import file_sha256

GOLDEN_FACES = "golden_faces.npy"
GOLDEN_EMBEDDINGS = "golden_embeddings.npy"
NUM_GOLDEN = 32
COMPANIONS = {".xml": (".bin",)}  # files an artifact loads from beside it


def artifact_files(artifact: str | Path) -> list[Path]:
    """The artifact and the files it needs beside it (an IR's ``.bin``)."""
    artifact = Path(artifact)
    return [artifact, *(artifact.with_suffix(s) for s in COMPANIONS.get(artifact.suffix, ()))]


def artifact_sha256(artifact: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` over the artifact's files."""
    return {p.name: file_sha256(p) for p in artifact_files(artifact)}


def write_golden(folder: Path, faces: np.ndarray, embeddings: np.ndarray, reference: str) -> dict:
    """Save the golden pair into ``folder``; returns the manifest's ``golden`` entry."""
    if faces.dtype != np.uint8 or faces.ndim != 4 or len(faces) != len(embeddings):
        raise ValueError(f"golden faces must be (N, H, W, 3) uint8 matching {len(embeddings)} embeddings")
    np.save(folder / GOLDEN_FACES, np.ascontiguousarray(faces))
    np.save(folder / GOLDEN_EMBEDDINGS, np.ascontiguousarray(embeddings, dtype=np.float32))
    return {
        "faces": GOLDEN_FACES,
        "embeddings": GOLDEN_EMBEDDINGS,
        "reference": reference,
        "num_images": len(faces),
        "sha256": {name: file_sha256(folder / name) for name in (GOLDEN_FACES, GOLDEN_EMBEDDINGS)},
    }


@dataclass(frozen=True)
class Golden:
    """The golden pair of one artifact, and the artifact hashes its manifest recorded."""

    faces: Path
    embeddings: np.ndarray
    reference: str
    artifact_sha256: dict[str, str]


def read_golden(artifact: str | Path) -> Golden | None:
    """The artifact's golden files from its ``manifest.json``; None when it has none (a foreign model or
    an artifact converted before golden files existed). Listed files that are missing or altered raise."""
    from edgekd.convert.manifest import read_manifest
    from edgekd.runtime.loaders import MANIFEST_NAME

    artifact = Path(artifact)
    if not (artifact.parent / MANIFEST_NAME).is_file():
        return None
    manifest = read_manifest(artifact.parent)
    entry = manifest.golden
    if not entry:
        return None
    folder = artifact.parent
    for key in ("faces", "embeddings"):
        path = folder / entry[key]
        if not path.is_file():
            raise ConfigError(
                f"golden file missing: {path} (listed in {folder / MANIFEST_NAME}); copy it with the "
                "artifact, re-run `edgekd convert`, or bench with --no-golden"
            )
        if file_sha256(path) != entry["sha256"][entry[key]]:
            raise ConfigError(f"golden file altered: {path} does not match its sha256 in the manifest")
    return Golden(
        faces=folder / entry["faces"],
        embeddings=np.load(folder / entry["embeddings"]),
        reference=entry["reference"],
        artifact_sha256=manifest.artifact_sha256 or {},
    )


def hash_mismatches(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """File names whose sha256 differs from (or is absent in) ``actual``."""
    return [name for name, sha in expected.items() if actual.get(name) != sha]


def golden_parity(device: np.ndarray, golden: Golden, candidate: str) -> ParityReport:
    """Per-image cosine of the device's embeddings of the golden faces against the golden embeddings."""
    if device.shape != golden.embeddings.shape:
        raise ConfigError(
            f"{candidate}: {device.shape} embeddings for golden faces, expected {golden.embeddings.shape}"
        )
    return compare_embeddings(device, golden.embeddings, candidate, golden.reference)
