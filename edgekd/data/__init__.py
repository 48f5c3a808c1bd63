"""Data: every source yields :class:`FaceSample` (uint8 RGB, label, source).

``load_verification_set`` turns what a user types after ``--pairs`` into a :class:`VerificationSet`:

==========================  ===============================================
``DIR``                     LFW layout with ``DIR/pairs.txt``
``DIR/pairs_06.txt``        LFW layout, a pairs file beside the identity folders
``FILE.bin``                insightface verification pickle (restricted unpickler)
``synthetic``               deterministic synthetic set (offline demos, tests)
==========================  ===============================================
"""

from __future__ import annotations

from pathlib import Path

from edgekd.data.folds import parse_folds, select_folds
from edgekd.data.sample import FaceDataset, FaceSample, VerificationSet
from edgekd.errors import DataError

__all__ = [
    "FaceDataset",
    "FaceSample",
    "VerificationSet",
    "load_verification_set",
    "parse_folds",
    "select_folds",
]


def load_verification_set(ref: str | Path, folds: str | tuple[int, ...] | None = None) -> VerificationSet:
    """Open a pairs source (see module table) and keep the selected folds (``"6-10"``)."""
    selected = parse_folds(folds) if isinstance(folds, str) or folds is None else tuple(folds)
    return select_folds(_open(str(ref)), selected)


def _open(ref: str) -> VerificationSet:
    if ref == "synthetic":
        from edgekd.data.synthetic import synthetic_verification_set

        return synthetic_verification_set()
    path = Path(ref)
    if not path.exists():
        raise DataError(
            f"pairs source not found: {path} (expected an LFW folder with pairs.txt, a pairs .txt, "
            "an insightface .bin, or 'synthetic')"
        )
    if path.suffix == ".bin":
        from edgekd.data.verification_bin import read_verification_bin

        return read_verification_bin(path)
    from edgekd.data.lfw import read_lfw_pairs

    if path.is_dir():
        return read_lfw_pairs(path)
    return read_lfw_pairs(path.parent, path)
