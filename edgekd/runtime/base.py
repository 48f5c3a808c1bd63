"""The one ``Embedder`` interface that eval, convert (parity) and bench share.

An embedder takes ``(N, H, W, 3)`` uint8 RGB faces and returns ``(N, D)`` float32 embeddings,
L2-normalised by default. It applies its own :class:`PreprocessSpec`, so callers never normalise.
Backends implement only ``_forward`` on an already preprocessed batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32 (zero rows stay zero instead of becoming NaN)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


class Embedder(ABC):
    """A face model behind a uniform call: uint8 RGB images in, embeddings out.

    Attributes: ``name`` (for reports), ``input_spec`` (preprocessing), ``embedding_size`` and
    ``max_batch`` (``None`` = any batch; static-batch artifacts set it and ``embed`` splits).

    >>> emb = load_embedder("model.onnx")  # doctest: +SKIP
    >>> emb.embed(images).shape  # images: (N, 112, 112, 3) uint8
    (N, 128)
    """

    name: str
    input_spec: PreprocessSpec
    embedding_size: int
    max_batch: int | None = None

    def embed(self, images: np.ndarray, normalize: bool = True) -> np.ndarray:
        """Embed ``(N, H, W, 3)`` uint8 RGB images; ``normalize=False`` returns raw model outputs."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ModelError(
                f"{self.name}: expected (N, H, W, 3) uint8 RGB images, got {images.dtype} {images.shape}"
            )
        if len(images) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        step = self.max_batch or len(images)
        outs = [self._run(images[i : i + step]) for i in range(0, len(images), step)]
        out = np.concatenate(outs).astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise ModelError(f"{self.name}: produced non-finite embeddings")
        return l2_normalize(out) if normalize else out

    def _run(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        batch = self.input_spec.apply(images)
        if self.max_batch and n < self.max_batch:  # static batch: pad, then drop the padding
            pad = np.repeat(batch[-1:], self.max_batch - n, axis=0)
            return self._forward(np.concatenate([batch, pad]))[:n]
        return self._forward(batch)

    @abstractmethod
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed float32 batch; return ``(N, D)`` raw embeddings."""
