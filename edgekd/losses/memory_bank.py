"""FIFO memory bank of past (teacher) embeddings and their labels, for relation-based losses.

A ring buffer of ``size`` slots: ``enqueue`` writes a batch at the pointer, wrapping around and
overwriting the oldest entries. Everything is a buffer, so ``state_dict`` saves and restores the
contents, the labels, the pointer and the fill count with the rest of the loss state.

>>> import torch
>>> bank = MemoryBank(size=10, dim=4)
>>> for start in (0, 4, 8):
...     bank.enqueue(torch.full((4, 4), float(start)), torch.arange(start, start + 4))
>>> bank.labels.tolist(), int(bank.ptr), len(bank)
([10, 11, 2, 3, 4, 5, 6, 7, 8, 9], 2, 10)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekd.distributed import all_gather_rows
from edgekd.errors import ConfigError


class MemoryBank(nn.Module):
    """``size`` x ``dim`` ring buffer; ``labels`` ``(size,)`` (``-1`` in never-written slots)."""

    embeddings: Tensor
    labels: Tensor
    ptr: Tensor
    filled: Tensor

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1 or dim < 1:
            raise ConfigError(f"memory bank needs size >= 1 and dim >= 1, got size={size}, dim={dim}")
        self.size, self.dim = size, dim
        self.register_buffer("embeddings", torch.zeros(size, dim))  # (size, dim)
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))  # (size,)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next slot to write
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # slots holding data

    def __len__(self) -> int:
        return int(self.filled)

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        """Append ``(B, dim)`` embeddings and ``(B,)`` labels, overwriting the oldest when full."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim or labels.shape != embeddings.shape[:1]:
            raise ValueError(
                f"memory bank of dim {self.dim}: got embeddings {tuple(embeddings.shape)}, "
                f"labels {tuple(labels.shape)}"
            )
        # Under DDP every rank enqueues the global batch, so all banks hold what one process would.
        embeddings, labels = all_gather_rows(embeddings), all_gather_rows(labels)
        b = embeddings.shape[0]
        start = int(self.ptr)
        if (
            b > self.size
        ):  # only the last `size` rows survive; they land where sequential writes would put them
            start = (start + b - self.size) % self.size
            embeddings, labels = embeddings[-self.size :], labels[-self.size :]
        slots = (start + torch.arange(len(labels), device=self.labels.device)) % self.size
        self.embeddings[slots] = embeddings.detach().to(self.embeddings)
        self.labels[slots] = labels.to(self.labels)
        self.ptr.fill_((start + len(labels)) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + b))

    def contents(self) -> tuple[Tensor, Tensor]:
        """The filled slots: ``(M, dim)`` embeddings and ``(M,)`` labels, ``M = len(self)``, in slot order."""
        m = len(self)
        return self.embeddings[:m], self.labels[:m]
