"""Embed a verification set with any :class:`Embedder` and score it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from edgekd.data.sample import FaceDataset, VerificationSet
from edgekd.eval.verification import VerificationMetrics, roc
from edgekd.runtime.base import Embedder


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one model on one pair set; ``flip`` holds the flip-test metrics when asked for."""

    model: str
    pairs: str
    metrics: VerificationMetrics
    flip: VerificationMetrics | None
    num_images: int
    embed_seconds: float

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "pairs": self.pairs,
            "num_images": self.num_images,
            "embed_seconds": round(self.embed_seconds, 3),
            "images_per_second": round(self.num_images * (2 if self.flip else 1) / self.embed_seconds, 2)
            if self.embed_seconds
            else None,
            "metrics": self.metrics.to_dict(),
            "flip": self.flip.to_dict() if self.flip else None,
        }


def _batches(dataset: FaceDataset, batch_size: int) -> Iterator[np.ndarray]:
    """Decode batches on a worker thread, one batch ahead of the model (PIL releases the GIL)."""

    def load(start: int) -> np.ndarray:
        stop = min(start + batch_size, len(dataset))
        return np.stack([dataset[i].image for i in range(start, stop)])

    with ThreadPoolExecutor(max_workers=1) as pool:
        starts = list(range(0, len(dataset), batch_size))
        pending = pool.submit(load, starts[0]) if starts else None
        for nxt in [*starts[1:], None]:
            batch = pending.result()
            pending = pool.submit(load, nxt) if nxt is not None else None
            yield batch


def embed_dataset(
    embedder: Embedder,
    dataset: FaceDataset,
    batch_size: int = 64,
    flip: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw (unnormalised) embeddings ``(N, D)`` of every image, and of the mirrored images if ``flip``."""
    plain, mirrored = [], []
    with tqdm(total=len(dataset), desc=f"embed {embedder.name}", unit="img", disable=not progress) as bar:
        for batch in _batches(dataset, batch_size):
            plain.append(embedder.embed(batch, normalize=False))
            if flip:
                mirrored.append(embedder.embed(np.ascontiguousarray(batch[:, :, ::-1]), normalize=False))
            bar.update(len(batch))
    return np.concatenate(plain), (np.concatenate(mirrored) if flip else None)


def evaluate(
    embedder: Embedder,
    vset: VerificationSet,
    flip: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> EvalResult:
    """Embed each image of ``vset`` once and compute verification metrics (plus flip-test ones).

    The flip test follows insightface: the raw embeddings of an image and its mirror are summed, then
    normalised.
    """
    start = time.perf_counter()
    emb, emb_flip = embed_dataset(embedder, vset.images, batch_size, flip, progress)
    seconds = time.perf_counter() - start
    a, b = vset.pairs[:, 0], vset.pairs[:, 1]
    metrics = roc(emb[a], emb[b], vset.issame, vset.folds)
    flip_metrics = None
    if emb_flip is not None:
        both = emb + emb_flip
        flip_metrics = roc(both[a], both[b], vset.issame, vset.folds)
    return EvalResult(embedder.name, vset.name, metrics, flip_metrics, len(vset.images), seconds)
