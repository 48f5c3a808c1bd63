"""Deterministic synthetic faces for tests and offline demos (no downloads, numpy only).

Each identity is a fixed smooth face-like picture: a soft skin-toned ellipse with eyes, brows and a
mouth whose positions, sizes and colours vary by identity, over a low-frequency colour field. Each
image of an identity shifts that picture by a few pixels and changes brightness, contrast and noise.
Everything is seeded from ``(seed, identity, image)`` alone, so ``ds[i]`` is the same in every call,
process and DataLoader worker, and same-identity images are closer than different-identity ones
without the task being trivial.
"""

from __future__ import annotations

import operator
from collections import OrderedDict

import numpy as np

from edgekd.data.folds import contiguous_folds
from edgekd.data.sample import FaceSample, VerificationSet

_CACHED_PICTURES = 32  # identity pictures kept per dataset (~170 KB each at 112x112)
_MARGIN = 4  # pixels of shift each way: the identity picture is drawn this much larger
_COARSE = 5  # the colour field is a 5x5 grid interpolated up, i.e. low-frequency
VERIFICATION_IDENTITY_OFFSET = 1_000_000  # keeps pair-set identities apart from training identities


def _interpolation_matrix(out_size: int, in_size: int) -> np.ndarray:
    """``(out, in)`` linear-interpolation weights, so a grid upsamples with two small matmuls."""
    pos = np.linspace(0, in_size - 1, out_size)
    lo = np.minimum(pos.astype(int), in_size - 2)
    frac = pos - lo
    m = np.zeros((out_size, in_size), dtype=np.float32)
    m[np.arange(out_size), lo] = 1 - frac
    m[np.arange(out_size), lo + 1] = frac
    return m


class SyntheticFaces:
    """``num_identities * images_per_identity`` synthetic faces; image ``i`` has label ``i // per``.

    ``identity_offset`` shifts which identities are drawn (labels still start at 0), so two sets with
    the same seed can hold disjoint people, as :func:`synthetic_verification_set` does.
    """

    def __init__(
        self,
        num_identities: int = 50,
        images_per_identity: int = 4,
        size: tuple[int, int] = (112, 112),
        seed: int = 0,
        *,
        identity_offset: int = 0,
    ):
        if num_identities < 1 or images_per_identity < 1:
            raise ValueError("num_identities and images_per_identity must be >= 1")
        if min(size) < 8:
            raise ValueError(f"size must be at least 8x8, got {size}")
        self.num_identities = num_identities
        self.images_per_identity = images_per_identity
        self.size = (int(size[0]), int(size[1]))
        self.seed = seed
        self.identity_offset = identity_offset
        h, w = self.size[0] + 2 * _MARGIN, self.size[1] + 2 * _MARGIN
        # Normalised coordinates in [-1, 1] of the padded canvas, shared by every identity.
        self._y = np.linspace(-1, 1, h, dtype=np.float32)
        self._x = np.linspace(-1, 1, w, dtype=np.float32)
        self._up_y, self._up_x = _interpolation_matrix(h, _COARSE), _interpolation_matrix(w, _COARSE)
        self._pictures: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def num_classes(self) -> int:
        return self.num_identities

    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def _blob(self, cy: float, cx: float, sy: float, sx: float) -> np.ndarray:
        """Separable Gaussian bump: an outer product instead of a full 2-D exp (cheap)."""
        return np.outer(np.exp(-(((self._y - cy) / sy) ** 2)), np.exp(-(((self._x - cx) / sx) ** 2)))

    def identity_picture(self, identity: int) -> np.ndarray:
        """The padded float32 ``(H+8, W+8, 3)`` picture every image of ``identity`` is cut from.

        A few recent pictures are cached: drawing one costs more than the per-image work, and
        loaders mostly read an identity's images together. The cache changes speed, never pixels.
        """
        picture = self._pictures.pop(identity, None)
        if picture is None:
            picture = self._draw_identity(identity)
            picture.flags.writeable = False
        self._pictures[identity] = picture
        if len(self._pictures) > _CACHED_PICTURES:
            self._pictures.popitem(last=False)
        return picture

    def _draw_identity(self, identity: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0, self.identity_offset + identity])
        grid = rng.uniform(40, 215, size=(3, _COARSE, _COARSE)).astype(np.float32)
        picture = np.stack([self._up_y @ g @ self._up_x.T for g in grid], axis=-1)
        ry, rx = rng.uniform(0.55, 0.75), rng.uniform(0.4, 0.6)
        inside = (self._y[:, None] / ry) ** 2 + (self._x[None, :] / rx) ** 2 - 1
        face = 1 / (1 + np.exp(np.minimum(20 * inside, 30)))  # soft-edged ellipse (capped: no overflow)
        skin = rng.uniform([150, 100, 70], [240, 190, 160]).astype(np.float32)
        picture += face[..., None] * (skin - picture)
        eye_y, eye_dx = rng.uniform(-0.25, -0.05), rng.uniform(0.15, 0.28)
        eye_size = rng.uniform(0.05, 0.09)
        features = (
            self._blob(eye_y, -eye_dx, eye_size, eye_size * 1.4)
            + self._blob(eye_y, eye_dx, eye_size, eye_size * 1.4)
            + 0.6 * self._blob(eye_y - 0.15, -eye_dx, 0.03, 0.12)
            + 0.6 * self._blob(eye_y - 0.15, eye_dx, 0.03, 0.12)
            + 0.8 * self._blob(rng.uniform(0.3, 0.45), 0.0, rng.uniform(0.03, 0.06), rng.uniform(0.12, 0.22))
        )
        dark = rng.uniform([10, 10, 10], [90, 60, 60]).astype(np.float32)
        picture += np.minimum(features, 1)[..., None] * (dark - picture)
        return picture

    def image(self, identity: int, number: int) -> np.ndarray:
        """Image ``number`` of ``identity`` as ``(H, W, 3)`` uint8 RGB."""
        rng = np.random.default_rng([self.seed, 1, self.identity_offset + identity, number])
        dy, dx = rng.integers(0, 2 * _MARGIN + 1, size=2)
        h, w = self.size
        crop = self.identity_picture(identity)[dy : dy + h, dx : dx + w]
        gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-15, 15)
        noise = (rng.random((h, w, 3), dtype=np.float32) - 0.5) * 20  # uniform: 5x cheaper than normal
        return np.clip(crop * gain + bias + noise, 0, 255).astype(np.uint8)

    def __getitem__(self, index: int) -> FaceSample:
        i = operator.index(index)
        if not 0 <= i < len(self):
            raise IndexError(f"synthetic index {i} out of range 0..{len(self) - 1}")
        identity, number = divmod(i, self.images_per_identity)
        return FaceSample(
            image=self.image(identity, number), label=identity, source=f"synthetic(seed={self.seed})#{i}"
        )


def _same_pair(rng: np.random.Generator, faces: SyntheticFaces) -> tuple[int, int]:
    identity = int(rng.integers(faces.num_identities))
    a, b = rng.choice(faces.images_per_identity, size=2, replace=False)
    base = identity * faces.images_per_identity
    return base + int(a), base + int(b)


def _different_pair(rng: np.random.Generator, faces: SyntheticFaces) -> tuple[int, int]:
    first, second = rng.choice(faces.num_identities, size=2, replace=False)
    a, b = rng.integers(faces.images_per_identity, size=2)
    per = faces.images_per_identity
    return int(first) * per + int(a), int(second) * per + int(b)


def synthetic_verification_set(
    num_pairs: int = 600,
    num_folds: int = 10,
    seed: int = 0,
    num_identities: int = 100,
    images_per_identity: int = 4,
    size: tuple[int, int] = (112, 112),
) -> VerificationSet:
    """A deterministic pair set laid out like LFW's: contiguous folds, each same pairs then different.

    Every fold has half same-identity pairs (odd-sized folds alternate which half gets the extra one),
    so per-fold accuracies mean the same thing. Its identities are disjoint from
    ``SyntheticFaces(seed=seed)``'s, so a demo can train on one and evaluate on the other.
    """
    if num_identities < 2 or images_per_identity < 2:
        raise ValueError("need at least 2 identities with 2 images each for same and different pairs")
    if num_folds < 1:
        raise ValueError(f"num_folds must be >= 1, got {num_folds}")
    faces = SyntheticFaces(
        num_identities, images_per_identity, size, seed, identity_offset=VERIFICATION_IDENTITY_OFFSET
    )
    folds = contiguous_folds(num_pairs, num_folds)
    rng = np.random.default_rng([seed, 2])
    pairs: list[tuple[int, int]] = []
    issame: list[bool] = []
    for fold in range(1, num_folds + 1):
        fold_size = int(np.count_nonzero(folds == fold))
        num_same = (fold_size + fold % 2) // 2
        pairs += [_same_pair(rng, faces) for _ in range(num_same)]
        pairs += [_different_pair(rng, faces) for _ in range(fold_size - num_same)]
        issame += [True] * num_same + [False] * (fold_size - num_same)
    return VerificationSet(
        name="synthetic",
        images=faces,
        pairs=np.asarray(pairs, dtype=np.int64),
        issame=np.asarray(issame, dtype=bool),
        folds=folds,
    )
