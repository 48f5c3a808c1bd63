"""Accuracy of embeddings computed elsewhere (on a device), scored by :func:`edgekd.eval.evaluate`.

The device embeds the pair set's images in dataset order; :class:`ReplayEmbedder` hands those rows back
to ``evaluate`` batch by batch, checking that each batch is the images the rows were computed from, so
remote accuracy goes through exactly the protocol of ``edgekd eval``.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from edgekd.data.preprocess import PreprocessSpec
from edgekd.data.sample import FaceDataset
from edgekd.errors import ModelError
from edgekd.runtime.base import Embedder, l2_normalize


def fingerprint(images: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 per-image checksums (all pixels, plus every 7th again) to catch misordered batches."""
    flat = images.reshape(len(images), -1)
    return flat.sum(axis=1, dtype=np.int64) * 3 + flat[:, ::7].sum(axis=1, dtype=np.int64)


def dataset_images(dataset: FaceDataset, progress: bool = False) -> np.ndarray:
    """Every image of ``dataset`` as one ``(N, H, W, 3)`` uint8 array, in dataset order."""
    rows = [dataset[i].image for i in tqdm(range(len(dataset)), desc="decode", disable=not progress)]
    return np.stack(rows) if rows else np.zeros((0, 112, 112, 3), np.uint8)


class ReplayEmbedder(Embedder):
    """An :class:`Embedder` whose outputs were computed elsewhere for ``images`` (same order)."""

    def __init__(self, name: str, embeddings: np.ndarray, images: np.ndarray, input_spec: PreprocessSpec):
        if len(embeddings) != len(images):
            raise ModelError(f"{name}: {len(embeddings)} embeddings came back for {len(images)} images")
        self.name = name
        self.input_spec = input_spec
        self.embedding_size = int(embeddings.shape[1]) if embeddings.ndim == 2 else 0
        self._embeddings = np.asarray(embeddings, np.float32)
        self._fingerprints = fingerprint(images)
        self._next = 0

    def embed(self, images: np.ndarray, normalize: bool = True) -> np.ndarray:
        n, start = len(images), self._next
        expected = self._fingerprints[start : start + n]
        if len(expected) != n or not np.array_equal(expected, fingerprint(images)):
            raise ModelError(
                f"{self.name}: the replayed embeddings do not match images {start}..{start + n - 1}"
            )
        self._next += n
        out = self._embeddings[start : start + n]
        if not np.isfinite(out).all():
            raise ModelError(f"{self.name}: produced non-finite embeddings")
        return l2_normalize(out) if normalize else out.copy()

    def _forward(self, batch: np.ndarray) -> np.ndarray:  # embed() is overridden; never called
        raise NotImplementedError
