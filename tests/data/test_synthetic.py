"""Synthetic faces: deterministic everywhere, identity-consistent, and a balanced LFW-like pair set."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.data.synthetic import SyntheticFaces, synthetic_verification_set

REPO = Path(__file__).resolve().parents[2]


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def test_samples_have_the_face_sample_contract():
    ds = SyntheticFaces(num_identities=3, images_per_identity=2, size=(40, 32))
    assert len(ds) == 6 and ds.num_classes == 3
    sample = ds[5]
    assert sample.image.shape == (40, 32, 3) and sample.image.dtype == np.uint8
    assert sample.label == 2 and "#5" in sample.source
    assert sample.image.std() > 10  # a picture, not a flat fill
    with pytest.raises(IndexError):
        ds[6]


def test_deterministic_across_calls_instances_and_access_order():
    a = SyntheticFaces(num_identities=40, images_per_identity=2, size=(32, 32), seed=3)
    first = [_digest(a[i].image) for i in range(80)]
    b = SyntheticFaces(num_identities=40, images_per_identity=2, size=(32, 32), seed=3)
    assert [_digest(b[i].image) for i in reversed(range(80))] == first[::-1]  # cache evictions too
    assert _digest(a[7].image) == first[7]
    other = SyntheticFaces(num_identities=40, images_per_identity=2, size=(32, 32), seed=4)
    assert _digest(other[7].image) != first[7]
    assert len(set(first)) == 80


def test_deterministic_in_another_process():
    code = (
        "import hashlib; from edgekd.data.synthetic import SyntheticFaces; "
        "print(hashlib.sha256(SyntheticFaces(seed=9)[13].image.tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(SyntheticFaces(seed=9)[13].image)


def test_same_identity_images_are_closer_than_different_identities():
    ds = SyntheticFaces(num_identities=12, images_per_identity=4, size=(48, 48), seed=1)
    x = np.stack([ds[i].image.astype(np.float32).ravel() for i in range(len(ds))])
    labels = np.array([ds[i].label for i in range(len(ds))])
    dist = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    same = labels[:, None] == labels[None]
    off_diagonal = ~np.eye(len(ds), dtype=bool)
    same_mean, diff_mean = dist[same & off_diagonal].mean(), dist[~same].mean()
    assert same_mean < 0.7 * diff_mean
    # Not trivial either: images of one identity still differ (shift, brightness, noise).
    assert dist[same & off_diagonal].min() > 0


def test_verification_set_is_balanced_per_fold_and_deterministic():
    vset = synthetic_verification_set(num_pairs=60, num_folds=10, seed=2, num_identities=10, size=(24, 24))
    assert vset.num_pairs == 60 and vset.name == "synthetic"
    np.testing.assert_array_equal(vset.folds, np.repeat(np.arange(1, 11), 6))
    for fold in range(1, 11):
        np.testing.assert_array_equal(vset.issame[vset.folds == fold], [True] * 3 + [False] * 3)
    labels = np.array([vset.images[int(i)].label for i in vset.pairs.ravel()]).reshape(-1, 2)
    np.testing.assert_array_equal(labels[:, 0] == labels[:, 1], vset.issame)
    assert (vset.pairs[:, 0] != vset.pairs[:, 1]).all()
    again = synthetic_verification_set(num_pairs=60, num_folds=10, seed=2, num_identities=10, size=(24, 24))
    np.testing.assert_array_equal(again.pairs, vset.pairs)
    np.testing.assert_array_equal(again.images[17].image, vset.images[17].image)
    other = synthetic_verification_set(num_pairs=60, num_folds=10, seed=3, num_identities=10, size=(24, 24))
    assert not np.array_equal(other.pairs, vset.pairs)


def test_odd_folds_alternate_and_identities_differ_from_training():
    vset = synthetic_verification_set(num_pairs=25, num_folds=5, seed=0, num_identities=5, size=(24, 24))
    assert [int(vset.issame[vset.folds == f].sum()) for f in range(1, 6)] == [3, 2, 3, 2, 3]
    train = SyntheticFaces(num_identities=5, images_per_identity=4, size=(24, 24), seed=0)
    assert not np.array_equal(train[0].image, vset.images[0].image)
