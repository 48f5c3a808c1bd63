"""Pose views: an aligned frontal face turned about the vertical axis, as a cylinder would turn.

Why: aligned training faces (LFW, CelebA) are mostly frontal, while CFP-FP pairs a frontal face with a
profile one. A student distilled on frontal faces never sees what the teacher does with a turned head.
A cylinder is the crudest head model that does what yaw does to an aligned 112×112 face: the far cheek
is squeezed and finally hidden, the near one widened, and a strip the camera never saw appears on the
near side (filled with the edge column). It is not a 3D face model; it is cheap (one column remap per
image) and deterministic, so a teacher cache can hold the teacher's embedding of every view.

View ``v`` of sample ``i`` is a pure function of ``(i, v, max_yaw)`` (:func:`view_yaw`); the same view is
what the student is trained on and what the teacher embedded.
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgekd.data.sample import FaceDataset, FaceSample, dataset_fingerprint

VIEW_SALT = 0x70_5E  # separates the view draws from every other (seed, ...) stream
POSE_VERSION = 1  # bump when turn_face or view_yaw change: cached teacher views then stop matching


def view_yaw(index: int, view: int, max_yaw: float) -> float:
    """Yaw in degrees of view ``view`` of sample ``index``: magnitude uniform in [max/2, max] (a near
    frontal view teaches nothing new), either direction."""
    rng = np.random.default_rng([VIEW_SALT, index, view])
    magnitude = rng.uniform(0.5, 1.0) * max_yaw
    return float(magnitude if rng.random() < 0.5 else -magnitude)


def turn_source_columns(width: int, yaw: float) -> np.ndarray:
    """Source column (float, pixel units) of every output column of a face turned by ``yaw`` degrees.

    The image width is the cylinder's diameter; normalised ``x = R sin(phi)``. An output column at
    ``x'`` shows the point at ``phi = asin(x') - yaw``, taken from the source at ``sin(phi)``; points that
    were behind the cylinder (``|phi| >= 90°``) clamp to the source's edge column.
    """
    theta = np.deg2rad(yaw)
    x_out = (np.arange(width) + 0.5) / width * 2.0 - 1.0
    phi = np.clip(np.arcsin(np.clip(x_out, -1.0, 1.0)) - theta, -np.pi / 2, np.pi / 2)
    return np.clip((np.sin(phi) + 1.0) / 2.0 * width - 0.5, 0.0, width - 1.0)


def turn_face(image: np.ndarray, yaw: float) -> np.ndarray:
    """``(H, W, 3)`` uint8 face turned by ``yaw`` degrees (positive: content moves to +x, where the far
    side is squeezed); linear interpolation between columns. ``yaw = 0`` returns an equal copy."""
    if yaw == 0:
        return image.copy()
    src = turn_source_columns(image.shape[1], yaw)
    left = np.floor(src).astype(np.intp)
    right = np.minimum(left + 1, image.shape[1] - 1)
    w = (src - left).astype(np.float32)[None, :, None]
    out = image[:, left].astype(np.float32) * (1.0 - w) + image[:, right].astype(np.float32) * w
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def view_image(image: np.ndarray, index: int, view: int, max_yaw: float) -> np.ndarray:
    """The pixels of view ``view`` of sample ``index``: what the student trains on and what the teacher
    cache embedded (one function, so the two cannot drift apart)."""
    return turn_face(image, view_yaw(index, view, max_yaw))


def pose_recipe(max_yaw: float) -> str:
    """What decides a view's pixels besides the sample: part of every cache key of pose views."""
    return f"pose-v{POSE_VERSION}:max_yaw={float(max_yaw)!r}"


class PoseView:
    """View ``view`` of every sample of ``dataset``: the dataset a teacher cache of that view embeds."""

    def __init__(self, dataset: FaceDataset, view: int, max_yaw: float):
        if view < 0:
            raise ValueError(f"view must be >= 0, got {view}")
        self.dataset, self.view, self.max_yaw = dataset, view, max_yaw

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> FaceSample:
        sample = self.dataset[index]
        image = view_image(sample.image, index, self.view, self.max_yaw)
        return FaceSample(image, sample.label, f"{sample.source}#view{self.view}")

    def fingerprint(self) -> str:
        """The base dataset's identity (its fingerprint, else its length and sources) plus the view."""
        base = dataset_fingerprint(self.dataset)
        digest = hashlib.sha256(f"{base}|{pose_recipe(self.max_yaw)}|view={self.view}".encode())
        return digest.hexdigest()
