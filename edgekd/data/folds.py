"""Fold selections (``"6-10"``, ``"1,3,5-7"``) and sub-setting a :class:`VerificationSet` by folds."""

from __future__ import annotations

import numpy as np

from edgekd.data.sample import FaceDataset, FaceSample, VerificationSet
from edgekd.errors import ConfigError, DataError


def parse_folds(spec: str | None) -> tuple[int, ...] | None:
    """``"6-10"`` → ``(6, 7, 8, 9, 10)``; ``None``/``""``/``"all"`` → ``None`` (every fold)."""
    if spec is None or str(spec).strip().lower() in ("", "all"):
        return None
    folds: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                folds.update(range(lo, hi + 1))
            else:
                folds.add(int(part))
        except ValueError:
            raise ConfigError(
                f"bad fold selection {spec!r}: use numbers and ranges like '6-10' or '1,3,5-7'"
            ) from None
    if min(folds) < 1:
        raise ConfigError(f"bad fold selection {spec!r}: folds are numbered from 1")
    return tuple(sorted(folds))


class _Subset:
    """A view on some images of a dataset (only those the selected pairs reference)."""

    def __init__(self, base: FaceDataset, indices: np.ndarray):
        self.base = base
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> FaceSample:
        return self.base[int(self.indices[index])]

    def raw_bytes(self, index: int) -> bytes | None:
        raw = getattr(self.base, "raw_bytes", None)
        return raw(int(self.indices[index])) if raw else None


def select_folds(vset: VerificationSet, folds: tuple[int, ...] | None) -> VerificationSet:
    """Keep the pairs of ``folds`` (and only the images they use); ``None`` keeps everything."""
    if folds is None:
        return vset
    available = sorted(set(vset.folds.tolist()))
    missing = [f for f in folds if f not in available]
    if missing:
        raise DataError(f"{vset.name} has folds {available[0]}-{available[-1]}; asked for {missing}")
    keep = np.isin(vset.folds, folds)
    pairs = vset.pairs[keep]
    used, inverse = np.unique(pairs.ravel(), return_inverse=True)
    label = ",".join(str(f) for f in folds) if len(folds) < 3 else f"{folds[0]}-{folds[-1]}"
    return VerificationSet(
        name=f"{vset.name}[folds {label}]",
        images=_Subset(vset.images, used),
        pairs=inverse.reshape(-1, 2),
        issame=vset.issame[keep],
        folds=vset.folds[keep],
    )


def contiguous_folds(num_pairs: int, num_folds: int) -> np.ndarray:
    """1-based fold ids splitting ``num_pairs`` contiguously, as sklearn's ``KFold(shuffle=False)``."""
    if num_pairs < num_folds:
        raise DataError(f"cannot split {num_pairs} pairs into {num_folds} folds")
    sizes = np.full(num_folds, num_pairs // num_folds)
    sizes[: num_pairs % num_folds] += 1
    return np.repeat(np.arange(1, num_folds + 1), sizes)
