"""Verification metrics on hand-computed cases and against a loop-by-loop insightface reference."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.eval.verification import (
    ACC_THRESHOLDS,
    equal_error_rate,
    kfold_accuracy,
    roc,
    roc_auc,
)


def pairs_with_distances(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D unit vectors whose squared distance is exactly ``dist`` (d = 2 - 2 cos θ)."""
    theta = np.arccos(1 - np.asarray(dist) / 2)
    a = np.tile([1.0, 0.0], (len(dist), 1))
    b = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return a, b


def test_kfold_accuracy_hand_computed():
    # fold 1: S 0.1, S 0.5, D 0.3, D 1.0 | fold 2: S 0.2, S 0.6, D 0.7, D 0.9
    dist = np.array([0.1, 0.5, 0.3, 1.0, 0.2, 0.6, 0.7, 0.9])
    issame = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    folds = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    accs, thrs = kfold_accuracy(dist, issame, folds)
    # fold 1 is tested at the first best threshold of fold 2 (0.61): 3/4 right;
    # fold 2 at the first best of fold 1 (0.11): only the two negatives right.
    np.testing.assert_allclose(thrs, [0.61, 0.11])
    np.testing.assert_allclose(accs, [0.75, 0.5])
    m = roc(*pairs_with_distances(dist), issame, folds)
    assert m.accuracy == pytest.approx(0.625)
    assert m.accuracy_std == pytest.approx(0.125)
    assert m.best_threshold == pytest.approx(0.36)


def test_separable_pairs_are_perfect():
    rng = np.random.default_rng(0)
    dist = np.concatenate([rng.uniform(0.1, 0.9, 300), rng.uniform(1.1, 1.9, 300)])
    issame = np.arange(600) < 300
    folds = np.tile(np.repeat(np.arange(1, 11), 30), 2)
    m = roc(*pairs_with_distances(dist), issame, folds)
    assert m.accuracy == 1.0 and m.accuracy_std == 0.0
    assert m.auc == 1.0 and m.eer == 0.0
    assert all(v[0] == 1.0 for v in m.tar_at_far.values())


def test_auc_hand_computed_and_ties():
    scores = np.array([0.9, 0.4, 0.5, 0.1])
    issame = np.array([1, 1, 0, 0], bool)
    assert roc_auc(scores, issame) == pytest.approx(0.75)
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0], bool)) == pytest.approx(0.5)


def test_eer_hand_computed():
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    issame = np.array([1, 1, 1, 0, 0, 0], bool)
    assert equal_error_rate(scores, issame) == pytest.approx(1 / 3)


def test_far_targets_limited_by_negative_count():
    rng = np.random.default_rng(1)
    n = 6000  # LFW: 10 folds x 300 negatives -> 2700 negatives per training split
    issame = np.tile(np.repeat([True, False], 300), 10)
    folds = np.repeat(np.arange(1, 11), 600)
    dist = np.where(issame, rng.uniform(0.2, 1.3, n), rng.uniform(0.9, 2.0, n))
    m = roc(*pairs_with_distances(dist), issame, folds)
    assert sorted(m.tar_at_far) == [1e-3, 1e-2, 1e-1]
    assert any("1e-04" in note and "2700" in note for note in m.notes)
    tars = [m.tar_at_far[f][0] for f in (1e-3, 1e-2, 1e-1)]
    assert tars == sorted(tars) and 0 < tars[0] < tars[-1] < 1


# --- insightface reference, written as plainly as its source: loops over folds and thresholds ---


def _insightface_accuracy(dist, issame, nfolds):
    folds = np.array_split(np.arange(len(dist)), nfolds)  # KFold(shuffle=False)
    accs = []
    for k in range(nfolds):
        test = folds[k]
        train = np.concatenate([folds[j] for j in range(nfolds) if j != k])
        acc_train = []
        for t in ACC_THRESHOLDS:
            pred = dist[train] < t
            acc_train.append(np.sum(pred == issame[train]) / len(train))
        best = ACC_THRESHOLDS[int(np.argmax(acc_train))]
        accs.append(np.sum((dist[test] < best) == issame[test]) / len(test))
    return np.mean(accs), np.std(accs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_insightface_reference(seed):
    rng = np.random.default_rng(seed)
    emb_a, emb_b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    issame = rng.random(600) < 0.5
    emb_b[issame] = emb_a[issame] + rng.normal(scale=0.9, size=(issame.sum(), 16))
    a = emb_a / np.linalg.norm(emb_a, axis=1, keepdims=True)
    b = emb_b / np.linalg.norm(emb_b, axis=1, keepdims=True)
    dist = np.sum((a - b) ** 2, axis=1)
    ref_mean, ref_std = _insightface_accuracy(dist, issame, 10)
    folds = np.repeat(np.arange(1, 11), 60)
    m = roc(emb_a, emb_b, issame, folds)
    assert m.accuracy == pytest.approx(ref_mean, abs=1e-12)
    assert m.accuracy_std == pytest.approx(ref_std, abs=1e-12)
    assert 0.6 < m.accuracy < 1.0  # the case is neither trivial nor random


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same length"):
        roc(np.ones((3, 2)), np.ones((3, 2)), np.ones(2, bool), np.ones(3))
