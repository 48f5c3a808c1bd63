"""LFW layout (``Person/Person_NNNN.jpg``) with the canonical ``pairs.txt`` (view 2, 10 folds).

``pairs.txt`` starts with ``"<folds> <n>"``; each fold is ``n`` same-person lines ``name i j`` followed
by ``n`` different-person lines ``name1 i name2 j``. The per-fold files ``pairs_01.txt`` list pairs as
consecutive relative paths (blank lines ignored) and are read too; their pairs are same-person exactly
when both paths are in the same identity folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.data.folds import contiguous_folds
from edgekd.data.image import read_image
from edgekd.data.sample import FaceSample, VerificationSet
from edgekd.errors import DataError

DEFAULT_FOLDS = 10  # files without fold structure are split like insightface's KFold(10)


class ImageFiles:
    """A list of image files as a :class:`FaceDataset` (label -1: verification images)."""

    def __init__(self, paths: list[Path], labels: list[int] | None = None):
        self.paths = paths
        self.labels = labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> FaceSample:
        path = self.paths[index]
        label = self.labels[index] if self.labels is not None else -1
        return FaceSample(image=read_image(path), label=label, source=str(path))

    def raw_bytes(self, index: int) -> bytes:
        """The encoded file, so writers (e.g. ``.bin``) copy images losslessly."""
        return self.paths[index].read_bytes()


def lfw_image_path(root: Path, name: str, number: int) -> Path:
    return root / name / f"{name}_{number:04d}.jpg"


def _parse_canonical(lines: list[str], pairs_file: Path) -> tuple[list[tuple[str, int, str, int]], int]:
    """Parse ``pairs.txt``: returns ``[(name1, n1, name2, n2)]`` and the pairs per fold."""
    try:
        num_folds, per_half = (int(v) for v in lines[0].split())
    except ValueError:
        raise DataError(
            f"{pairs_file}:1: expected header '<folds> <pairs per half>', got {lines[0]!r}"
        ) from None
    out: list[tuple[str, int, str, int]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split()
        try:
            if len(parts) == 3:
                out.append((parts[0], int(parts[1]), parts[0], int(parts[2])))
            elif len(parts) == 4:
                out.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
            else:
                raise ValueError
        except ValueError:
            raise DataError(
                f"{pairs_file}:{lineno}: expected 'name i j' or 'name1 i name2 j', got {line!r}"
            ) from None
    if len(out) != num_folds * 2 * per_half:
        raise DataError(f"{pairs_file}: header promises {num_folds}x2x{per_half} pairs, file has {len(out)}")
    return out, 2 * per_half


def _pairs_from_paths(lines: list[str], pairs_file: Path) -> list[tuple[str, str]]:
    if len(lines) % 2:
        raise DataError(f"{pairs_file}: odd number of image paths ({len(lines)}); pairs need two each")
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]


def read_lfw_pairs(root: str | Path, pairs_file: str | Path | None = None) -> VerificationSet:
    """Read an LFW-layout folder and its pairs file into a :class:`VerificationSet`.

    Every referenced image must exist: a missing one raises :class:`DataError` naming the image and
    the pairs-file line, before any model runs.

    >>> vset = read_lfw_pairs("../shared/data/lfw112")  # doctest: +SKIP
    >>> vset.num_pairs
    6000
    """
    root = Path(root)
    pairs_file = Path(pairs_file) if pairs_file else root / "pairs.txt"
    if not root.is_dir():
        raise DataError(f"LFW folder not found: {root}")
    if not pairs_file.is_file():
        raise DataError(f"pairs file not found: {pairs_file}")
    lines = [ln.strip() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"pairs file is empty: {pairs_file}")

    if len(lines[0].split()) == 2 and "/" not in lines[0]:
        canonical, per_fold = _parse_canonical(lines, pairs_file)
        rel = [(lfw_image_path(root, a, i), lfw_image_path(root, b, j)) for a, i, b, j in canonical]
        issame = np.array([a == b for a, _, b, _ in canonical])
        folds = np.repeat(np.arange(1, len(rel) // per_fold + 1), per_fold)
    else:
        rel = [(root / a, root / b) for a, b in _pairs_from_paths(lines, pairs_file)]
        issame = np.array([a.parent.name == b.parent.name for a, b in rel])
        folds = contiguous_folds(len(rel), DEFAULT_FOLDS)
    return _build_set(f"{root.name}:{pairs_file.name}", rel, issame, folds)


def _build_set(
    name: str, rel: list[tuple[Path, Path]], issame: np.ndarray, folds: np.ndarray
) -> VerificationSet:
    index: dict[Path, int] = {}
    pairs = np.empty((len(rel), 2), dtype=np.int64)
    for p, (a, b) in enumerate(rel):
        for k, path in enumerate((a, b)):
            if path not in index:
                if not path.is_file():
                    raise DataError(f"image of pair {p + 1} not found: {path}")
                index[path] = len(index)
            pairs[p, k] = index[path]
    return VerificationSet(name=name, images=ImageFiles(list(index)), pairs=pairs, issame=issame, folds=folds)


def identities_in_pairs(vset: VerificationSet) -> set[str]:
    """Identity names (parent folders) of the images a pair set uses: e.g. to exclude them from training."""
    images = vset.images
    while not isinstance(images, ImageFiles):
        images = getattr(images, "base", None)
        if images is None:
            raise DataError(f"{vset.name}: identities are only known for LFW-layout sets")
    used = np.unique(vset.pairs)
    indices = getattr(vset.images, "indices", None)
    ids = indices[used] if indices is not None else used
    return {images.paths[int(i)].parent.name for i in ids}
