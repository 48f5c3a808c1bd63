"""Face-verification metrics, pure NumPy, identical to insightface's ``eval/verification.py``.

Embeddings are L2-normalised and compared by squared Euclidean distance ``d = ||a - b||² = 2 - 2·cos``.

* Accuracy: k-fold; on each fold the threshold is the one (on the grid ``0:4:0.01``, first maximum)
  that maximises accuracy on the *other* folds, applied to the held-out fold; mean ± std over folds
  (``np.std``, population, as insightface reports it).
* TAR@FAR (insightface's "VAL@FAR"): per fold, the threshold whose FAR on the other folds equals the
  target (linear interpolation over the grid ``0:4:0.001``), TAR measured on the held-out fold. A
  target is reported only when the training negatives per fold are at least ``1/FAR``; otherwise no
  false accept could even occur and the number would be meaningless — it is listed in ``notes``.
* ROC AUC and EER over all pairs (cosine similarity scores), threshold-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ACC_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
FAR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


@dataclass(frozen=True)
class VerificationMetrics:
    """Results of :func:`roc`; ``tar_at_far`` maps FAR → (mean, std) over folds."""

    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    best_threshold: float
    tar_at_far: dict[float, tuple[float, float]]
    auc: float
    eer: float
    num_pairs: int
    num_folds: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tar_at_far"] = {f"{k:.0e}": {"mean": v[0], "std": v[1]} for k, v in self.tar_at_far.items()}
        return d


def squared_distances(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """``(P,)`` squared L2 distances between row-normalised embeddings."""
    a = emb_a / np.linalg.norm(emb_a, axis=1, keepdims=True)
    b = emb_b / np.linalg.norm(emb_b, axis=1, keepdims=True)
    return np.sum(np.square(a - b), axis=1)


def accuracy_per_threshold(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of ``dist < t`` for every t: ``(T,)``."""
    predict = dist[None, :] < thresholds[:, None]  # (T, P)
    return (predict == issame[None, :]).mean(axis=1)


def tar_far(dist: np.ndarray, issame: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TAR, FAR) of accepting ``dist < threshold``."""
    accept = dist < threshold
    n_same, n_diff = issame.sum(), (~issame).sum()
    tar = float((accept & issame).sum() / n_same) if n_same else 0.0
    far = float((accept & ~issame).sum() / n_diff) if n_diff else 0.0
    return tar, far


def _fold_splits(folds: np.ndarray):
    for f in np.unique(folds):
        yield folds != f, folds == f


def kfold_accuracy(dist: np.ndarray, issame: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold test accuracy and chosen threshold (insightface ``calculate_roc``)."""
    accs, thrs = [], []
    for train, test in _fold_splits(folds):
        best = ACC_THRESHOLDS[
            int(np.argmax(accuracy_per_threshold(dist[train], issame[train], ACC_THRESHOLDS)))
        ]
        accs.append(accuracy_per_threshold(dist[test], issame[test], np.array([best]))[0])
        thrs.append(best)
    return np.array(accs), np.array(thrs)


def kfold_tar_at_far(
    dist: np.ndarray, issame: np.ndarray, folds: np.ndarray, far_target: float
) -> np.ndarray:
    """Per-fold TAR at a FAR target (insightface ``calculate_val``)."""
    tars = []
    for train, test in _fold_splits(folds):
        d_train, s_train = dist[train], issame[train]
        neg = np.sort(d_train[~s_train])
        # FAR(t) = #neg < t / n_neg for every grid threshold, non-decreasing in t
        far_train = np.searchsorted(neg, VAL_THRESHOLDS, side="left") / max(len(neg), 1)
        if far_train.max() >= far_target:
            threshold = float(np.interp(far_target, far_train, VAL_THRESHOLDS))
        else:
            threshold = 0.0
        tars.append(tar_far(dist[test], issame[test], threshold)[0])
    return np.array(tars)


def roc_auc(scores: np.ndarray, issame: np.ndarray) -> float:
    """Area under the ROC of similarity ``scores`` (higher = same), ties counted half (Mann–Whitney)."""
    pos, neg = scores[issame], scores[~issame]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allscores = np.concatenate([pos, neg])[order]
    # average ranks over ties
    _, first, counts = np.unique(allscores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def equal_error_rate(scores: np.ndarray, issame: np.ndarray) -> float:
    """EER: where false-accept and false-reject rates cross (linear interpolation between thresholds)."""
    thresholds = np.unique(scores)
    pos, neg = np.sort(scores[issame]), np.sort(scores[~issame])
    # accept when score >= t
    frr = np.searchsorted(pos, thresholds, side="left") / len(pos)
    far = 1.0 - np.searchsorted(neg, thresholds, side="left") / len(neg)
    diff = far - frr  # decreasing in t
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float((far[0] + frr[0]) / 2)
    d0, d1 = diff[i - 1], diff[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.5
    return float(far[i - 1] + w * (far[i] - far[i - 1]))


def roc(emb_a: np.ndarray, emb_b: np.ndarray, issame: np.ndarray, folds: np.ndarray) -> VerificationMetrics:
    """All verification metrics for pairs ``(emb_a[i], emb_b[i])`` with labels and fold ids.

    >>> m = roc(a, b, issame, folds)  # doctest: +SKIP
    >>> f"{m.accuracy:.4f} ± {m.accuracy_std:.4f}"
    """
    issame = np.asarray(issame, bool)
    folds = np.asarray(folds)
    if not (len(emb_a) == len(emb_b) == len(issame) == len(folds)):
        raise ValueError("emb_a, emb_b, issame and folds must have the same length")
    dist = squared_distances(np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64))
    accs, thrs = kfold_accuracy(dist, issame, folds)
    n_neg_train = min(int((~issame[folds != f]).sum()) for f in np.unique(folds))
    tar: dict[float, tuple[float, float]] = {}
    notes: list[str] = []
    for far in FAR_TARGETS:
        if n_neg_train * far < 1:
            notes.append(
                f"TAR@FAR={far:.0e} not reported: needs >= {round(1 / far)} negative pairs per "
                f"training split, have {n_neg_train}"
            )
            continue
        t = kfold_tar_at_far(dist, issame, folds, far)
        tar[far] = (float(t.mean()), float(t.std()))
    scores = 1.0 - dist / 2.0
    return VerificationMetrics(
        accuracy=float(accs.mean()),
        accuracy_std=float(accs.std()),
        fold_accuracies=[float(a) for a in accs],
        best_threshold=float(thrs.mean()),
        tar_at_far=tar,
        auc=roc_auc(scores, issame),
        eer=equal_error_rate(scores, issame),
        num_pairs=len(issame),
        num_folds=len(np.unique(folds)),
        notes=notes,
    )
