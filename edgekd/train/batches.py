"""Training data: the identity set, and the batch of every step as a pure function of (seed, step).

Drawing step ``s``'s batch from ``default_rng([seed, s])`` makes ``--resume`` exact without saving a
sampler state, and lets every DDP rank draw the same global batch and keep its own slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd.data import load_verification_set
from edgekd.data.augment import view_image
from edgekd.data.concat import ConcatFaces, LabelledSubset
from edgekd.data.identity_folder import IdentityFolderDataset
from edgekd.data.lfw import identities_in_pairs
from edgekd.data.preprocess import PreprocessSpec
from edgekd.data.recordio import RecordIODataset
from edgekd.data.sample import FaceDataset
from edgekd.data.synthetic import SyntheticFaces
from edgekd.errors import DataError

VIEW_STREAM = 1  # third word of the pose-view draw's seed: (seed, step) alone draws indices and flips


@dataclass(frozen=True)
class TrainSet:
    dataset: FaceDataset
    labels: np.ndarray  # (N,) int64 in 0..num_classes-1
    num_classes: int
    source: str


def _labels(dataset: FaceDataset) -> np.ndarray:
    if hasattr(dataset, "labels"):
        return np.asarray(dataset.labels(), np.int64)
    return np.asarray([dataset[i].label for i in range(len(dataset))], np.int64)


def read_names(path: str | Path) -> set[str]:
    """Identity names listed in a text file: every whitespace-separated word of every line (``#`` starts
    a comment). A mapping such as CFP's ``names.txt`` (``cfp_001<TAB>50_Cent``) thus holds out both
    spellings of the person."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read identity names from {path}: {exc}") from exc
    names = {word for line in text.splitlines() for word in line.split("#", 1)[0].split()}
    if not names:
        raise DataError(f"{path} lists no identity names (one or more per line)")
    return names


def held_out_identities(
    exclude_pairs: str | None, exclude_folds: str | None, exclude_names: Sequence[str] = ()
) -> set[str] | None:
    """The identities training must never see: those of the test pairs, and those named in files."""
    if not exclude_pairs and not exclude_names:
        return None
    held: set[str] = set()
    if exclude_pairs:
        held |= identities_in_pairs(load_verification_set(exclude_pairs, exclude_folds))
    for path in exclude_names:
        held |= read_names(path)
    return held


def _open_source(root: str, held_out: set[str] | None) -> FaceDataset:
    """An identity-folder root, or an insightface ``.rec`` (+ ``.idx``) whose identities are its class
    numbers: a held-out name that is a class number (``1234``) drops that class, as a folder name does."""
    path = Path(root)
    if path.suffix == ".rec" and path.is_file():
        records = RecordIODataset(path)
        if not held_out:
            return records
        labels = records.labels()
        dropped = np.array(sorted(int(n) for n in held_out if n.isdigit()), dtype=np.int64)
        keep = np.flatnonzero(~np.isin(labels, dropped))
        if len(keep) == len(labels):
            return records
        if len(keep) == 0:
            raise DataError(f"{root}: every identity is held out")
        return LabelledSubset(records, keep)
    if not path.is_dir():
        raise DataError(
            f"training data not found: {root} (an identity-folder root, an insightface .rec, or 'synthetic')"
        )
    return IdentityFolderDataset(root, exclude=held_out)


def build_train_set(
    data: str | Sequence[str],
    exclude_pairs: str | None = None,
    synthetic: tuple[int, int] = (64, 4),
    exclude_folds: str | None = None,
    exclude_names: Sequence[str] = (),
) -> TrainSet:
    """``data``: identity-folder roots or insightface ``.rec`` files (one or several, concatenated with
    disjoint labels) or ``"synthetic"``. Identities of ``exclude_pairs`` (its ``exclude_folds``) and
    those listed in the ``exclude_names`` files are held out of every root.

    The synthetic training set uses identities disjoint from ``synthetic_verification_set``'s (offset),
    so validating on ``"synthetic"`` pairs measures generalisation, not memory.
    """
    roots = [data] if isinstance(data, str) else list(data)
    if not roots:
        raise DataError("no training data given (an identity-folder root, or 'synthetic')")
    if "synthetic" in roots:
        if len(roots) > 1:
            raise DataError("'synthetic' training data cannot be combined with folders")
        ids, per = synthetic
        dataset: FaceDataset = SyntheticFaces(ids, per, seed=0, identity_offset=10_000)
        labels = np.arange(len(dataset), dtype=np.int64) // per
    else:
        held_out = held_out_identities(exclude_pairs, exclude_folds, exclude_names)
        parts = [_open_source(root, held_out) for root in roots]
        dataset = parts[0] if len(parts) == 1 else ConcatFaces(parts)
        labels = _labels(dataset)
    if len(dataset) == 0:
        raise DataError(f"the training set {', '.join(roots)} is empty")
    return TrainSet(dataset, labels, int(labels.max()) + 1, "+".join(roots))


def step_indices(seed: int, step: int, n: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Global batch indices ``(batch,)`` and horizontal-flip flags of one step (same on every rank)."""
    rng = np.random.default_rng([seed, step])
    idx = rng.choice(n, batch, replace=n < batch)
    return idx, rng.random(batch) < 0.5


def step_views(seed: int, step: int, batch: int, views: int, prob: float) -> np.ndarray:
    """Pose view of every sample of one step's global batch: ``-1`` (the image itself) or ``0..views-1``
    (with probability ``prob``). A stream of its own, so the indices and flips stay those of
    :func:`step_indices` whether or not pose views are on."""
    if views == 0 or prob == 0:
        return np.full(batch, -1, np.int64)
    rng = np.random.default_rng([seed, step, VIEW_STREAM])
    chosen, which = rng.random(batch) < prob, rng.integers(views, size=batch)
    return np.where(chosen, which, -1).astype(np.int64)


def decode_images(
    dataset: FaceDataset,
    idx: np.ndarray,
    flips: np.ndarray,
    views: np.ndarray | None = None,
    max_yaw: float = 0.0,
) -> np.ndarray:
    """Decoded images, turned where ``views >= 0`` (:class:`edgekd.data.augment.PoseView`'s pixels, which
    the teacher cache embedded) and mirrored where ``flips``; before any normalisation, so a student and
    an online teacher with different normalisations see the same pixels from one decode."""
    images = np.stack([dataset[int(i)].image for i in idx])
    if views is not None:
        for row in np.flatnonzero(views >= 0):
            images[row] = view_image(images[row], int(idx[row]), int(views[row]), max_yaw)
    images[flips] = images[flips, :, ::-1]
    return images


def load_images(
    dataset: FaceDataset, idx: np.ndarray, flips: np.ndarray, spec: PreprocessSpec
) -> torch.Tensor:
    """Decoded, mirrored where ``flips``, preprocessed ``(B, 3, H, W)`` channels-last float batch."""
    images = decode_images(dataset, idx, flips)
    return torch.from_numpy(spec.apply(images)).contiguous(memory_format=torch.channels_last)
