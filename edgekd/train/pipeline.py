"""Decoded batches ahead of the training step: a torch ``DataLoader`` whose items are whole steps.

Item ``s`` is step ``s``'s batch (this rank's slice of the global batch drawn from ``(seed, s)``), decoded
and mirrored. Because an item is a pure function of the step, the loader's workers change *when* a batch
is decoded, never *which* images it holds: 0 or N workers, a fresh run or ``--resume``, the batches are
identical. Decoding (JPEG → uint8, pose views, flip) runs in the workers; normalisation and the
teacher-cache lookup stay in the training process (they are cheap and need the student's and the
teacher's specs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edgekd.data.sample import FaceDataset
from edgekd.distributed import DistInfo, rank_slice
from edgekd.train.batches import decode_images, step_indices, step_views


@dataclass(frozen=True)
class Decoded:
    """One step's slice: dataset indices, flip flags, pose views (-1: none) and the decoded uint8 RGB
    images (turned, mirrored)."""

    step: int
    indices: np.ndarray
    flips: np.ndarray
    images: np.ndarray
    views: np.ndarray


class StepBatches(Dataset):
    """``self[step]`` → :class:`Decoded` for that step (any step: training, calibration streams)."""

    def __init__(
        self,
        dataset: FaceDataset,
        seed: int,
        batch_size: int,
        flip: bool,
        dist: DistInfo,
        pose: tuple[int, float, float] = (0, 0.0, 0.0),
    ):
        """``pose``: (views, probability, max yaw in degrees) of :func:`step_views`; no views by default."""
        self.dataset, self.seed, self.batch_size, self.flip, self.dist = dataset, seed, batch_size, flip, dist
        self.pose_views, self.pose_prob, self.max_yaw = pose

    def __len__(self) -> int:  # steps are drawn by the sampler; any non-negative int is valid
        return 1 << 62

    def __getitem__(self, step: int) -> Decoded:
        idx, flips = step_indices(self.seed, step, len(self.dataset), self.batch_size)
        views = step_views(self.seed, step, self.batch_size, self.pose_views, self.pose_prob)
        flips[views >= 0] = False  # a view's yaw takes either direction; its mirror is not cached
        if not self.flip:
            flips[:] = False
        idx, flips, views = (rank_slice(a, self.dist) for a in (idx, flips, views))
        images = decode_images(self.dataset, idx, flips, views, self.max_yaw)
        return Decoded(step, idx, flips, images, views)


def _single(item: Decoded) -> Decoded:
    return item  # batch_size=None hands items through; this keeps them out of default_collate


def decoded_steps(
    batches: StepBatches, start: int, stop: int, workers: int = 0, prefetch: int = 2
) -> Iterator[Decoded]:
    """Steps ``start..stop-1`` in order, decoded ``prefetch`` steps ahead by each of ``workers`` workers
    (0: decoded in this process, on demand, as before)."""
    if workers == 0:
        return (batches[s] for s in range(start, stop))
    loader = DataLoader(
        batches,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        prefetch_factor=prefetch,
        collate_fn=_single,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_one_thread,
        # spawn, not fork: a forked copy of a large training process (intra-op thread pools, NNCF or JAX
        # threads, gigabytes of Python objects whose refcounts unshare its pages) is unsafe and costly;
        # a spawned worker imports edgekd (a few seconds, once per run) and receives the picklable dataset
        multiprocessing_context="spawn",
    )
    return iter(loader)


def _one_thread(_: int) -> None:
    """A worker decodes; it must not also spawn a pool of intra-op threads competing with training."""
    torch.set_num_threads(1)
