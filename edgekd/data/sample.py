"""The one sample type every dataset returns, and the protocols datasets and pair sets follow."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class FaceSample:
    """One aligned face.

    ``image`` is ``(H, W, 3)`` uint8 **RGB** (decoders convert from BGR/JPEG), ``label`` the identity
    index (``-1`` when unknown, e.g. in verification sets) and ``source`` names where it came from
    (a path, or ``file.bin#17``) so every error can point at the file.
    """

    image: np.ndarray
    label: int
    source: str


@runtime_checkable
class FaceDataset(Protocol):
    """Random-access collection of :class:`FaceSample` (LFW folders, .bin, RecordIO, synthetic)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> FaceSample: ...


@dataclass(frozen=True)
class VerificationSet:
    """Face pairs for verification.

    ``images`` holds each referenced image once; ``pairs`` is ``(P, 2)`` indices into it, ``issame``
    ``(P,)`` bool and ``folds`` ``(P,)`` the 1-based fold of each pair (LFW's 10 folds, or contiguous
    equal splits for files without folds, as insightface's ``KFold(shuffle=False)`` makes them).
    """

    name: str
    images: FaceDataset
    pairs: np.ndarray
    issame: np.ndarray
    folds: np.ndarray

    def __post_init__(self) -> None:
        p = len(self.issame)
        if self.pairs.shape != (p, 2) or self.folds.shape != (p,):
            raise ValueError(
                f"{self.name}: pairs {self.pairs.shape}, issame {self.issame.shape} and folds "
                f"{self.folds.shape} disagree"
            )

    @property
    def num_pairs(self) -> int:
        return len(self.issame)


def dataset_fingerprint(dataset: FaceDataset) -> str:
    """``dataset.fingerprint()`` if it has one, else sha256 of its length and every sample's ``source``.

    The fallback reads (decodes) every sample once; large datasets should define ``fingerprint()``.
    """
    method = getattr(dataset, "fingerprint", None)
    if callable(method):
        return f"dataset:{method()}"
    digest = hashlib.sha256(f"{len(dataset)}\n".encode())
    for i in range(len(dataset)):
        digest.update(dataset[i].source.encode("utf-8", "surrogateescape") + b"\n")
    return f"sources:{digest.hexdigest()}"
