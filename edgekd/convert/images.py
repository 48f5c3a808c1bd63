"""Face crops for parity checks and PTQ calibration: real faces from a folder, else synthetic ones.

Parity and calibration need the same kind of input the model will see; real aligned crops (e.g. LFW112)
are best, the synthetic set keeps the pipeline runnable offline. Images are drawn with a fixed seed so a
rerun checks (or calibrates on) exactly the same faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.errors import DataError


def face_images(
    source: str | Path | None = None, count: int = 64, seed: int = 0, size: tuple[int, int] = (112, 112)
) -> np.ndarray:
    """``(count, H, W, 3)`` uint8 RGB faces: drawn without replacement from a folder-per-identity tree
    (LFW layout) when ``source`` is given, else from :class:`~edgekd.data.synthetic.SyntheticFaces`."""
    if count < 1:
        raise DataError(f"need at least one face image, asked for {count}")
    if source is None:
        return _synthetic(count, seed, size)
    from edgekd.data.identity_folder import IdentityFolderDataset

    dataset = IdentityFolderDataset(source)
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:count]
    images = np.stack([dataset[int(i)].image for i in np.sort(chosen)])
    if tuple(images.shape[1:3]) != tuple(size):
        raise DataError(
            f"{source}: faces are {images.shape[1]}x{images.shape[2]}, expected {size[0]}x{size[1]}"
        )
    return images


def _synthetic(count: int, seed: int, size: tuple[int, int]) -> np.ndarray:
    from edgekd.data.synthetic import SyntheticFaces

    per_identity = 4
    faces = SyntheticFaces(-(-count // per_identity), per_identity, size=size, seed=seed)
    return np.stack([faces[i].image for i in range(count)])
