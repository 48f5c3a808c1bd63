"""Multi-process training as ``torchrun`` sets it up: rank/world from the environment, gloo or nccl.

edgekd never spawns processes itself; ``torchrun --nproc-per-node 2 -m edgekd distill-qat ...`` does.
Every rank draws the same global batch indices for a step and takes its own slice, so the union of the
ranks' batches is the single-process batch and DDP's gradient average matches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_from_env(device: torch.device | None = None) -> DistInfo:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); single process otherwise.

    NCCL when this rank trains on a GPU, gloo on CPUs (NCCL cannot reduce CPU tensors, so choosing it
    because CUDA merely exists broke CPU runs on GPU machines)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (a picklable value, e.g. a folder name); identity on one process."""
    if not info.enabled:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_ranks(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is true on every rank (a collective: every rank must call it)."""
    if not info.enabled:
        return flag
    flags: list[bool | None] = [None] * info.world
    dist.all_gather_object(flags, flag)
    return all(flags)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate a ``(B, ...)`` tensor over ranks in rank order (identity without a process group).

    Every rank must pass the same ``B``; used so memory banks see the global batch on every rank.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def rank_slice(indices, info: DistInfo):
    """This rank's share of the global batch: every ``world``-th element from ``rank``."""
    return indices[info.rank :: info.world]
