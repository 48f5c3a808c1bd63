"""Labelled face sets combined into one training set: several sources concatenated (LFW's identities
plus CelebA's, say), or one source with some identities held out.

Labels are offset per part so identities never merge across sources (two folders called ``Jane_Doe`` in
two roots stay two classes: nothing says they are the same person).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from edgekd.data.sample import FaceDataset, FaceSample


class ConcatFaces:
    """Concatenation of labelled :class:`FaceDataset` parts (each with ``labels()``), labels offset."""

    def __init__(self, parts: Sequence[FaceDataset]):
        if not parts:
            raise ValueError("ConcatFaces needs at least one part")
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        labels, offset = [], 0
        for part in self.parts:
            own = np.asarray(part.labels(), np.int64)  # type: ignore[attr-defined]
            labels.append(own + offset)
            offset += int(own.max()) + 1 if len(own) else 0
        self._labels = np.concatenate(labels)
        self.num_classes = offset

    def __len__(self) -> int:
        return int(self.starts[-1])

    def labels(self) -> np.ndarray:
        return self._labels

    def __getitem__(self, index: int) -> FaceSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range 0..{len(self) - 1}")
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        sample = self.parts[k][int(index - self.starts[k])]
        return FaceSample(sample.image, int(self._labels[index]), sample.source)


class LabelledSubset:
    """The images of ``dataset`` at ``indices``, labels renumbered ``0 .. classes-1`` in order of first use
    (a classifier head sized from the kept identities only). Has ``fingerprint()`` when the base has."""

    def __init__(self, dataset: FaceDataset, indices: np.ndarray):
        self.base, self.indices = dataset, np.asarray(indices, np.int64)
        base_labels = np.asarray(dataset.labels(), np.int64)[self.indices]  # type: ignore[attr-defined]
        _, self._labels = np.unique(base_labels, return_inverse=True)
        self._labels = self._labels.astype(np.int64)
        self._digest = hashlib.sha256(self.indices.tobytes()).hexdigest()

    @property
    def fingerprint(self) -> Callable[[], str]:
        """The base's fingerprint and the kept indices (only when the base has one: then no image is read)."""
        base = getattr(self.base, "fingerprint", None)
        if not callable(base):
            raise AttributeError("fingerprint")
        return lambda: f"{base()}[{self._digest}]"

    def __len__(self) -> int:
        return len(self.indices)

    def labels(self) -> np.ndarray:
        return self._labels

    def __getitem__(self, index: int) -> FaceSample:
        sample = self.base[int(self.indices[index])]
        return FaceSample(sample.image, int(self._labels[index]), sample.source)
