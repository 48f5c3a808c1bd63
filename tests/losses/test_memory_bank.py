"""Memory bank: FIFO wrap-around is exact, state_dict round-trips."""

from __future__ import annotations

import pytest
import torch

from edgekd.losses.memory_bank import MemoryBank


def _batch(start: int, n: int = 4, dim: int = 3):
    values = torch.arange(start, start + n, dtype=torch.float32)
    return values.unsqueeze(1).repeat(1, dim), torch.arange(start, start + n)


def test_wrap_around():
    bank = MemoryBank(size=10, dim=3)
    bank.enqueue(*_batch(0))
    assert (int(bank.ptr), len(bank)) == (4, 4)
    assert bank.contents()[1].tolist() == [0, 1, 2, 3]
    bank.enqueue(*_batch(4))
    bank.enqueue(*_batch(8))
    assert (int(bank.ptr), len(bank)) == (2, 10)
    assert bank.labels.tolist() == [10, 11, 2, 3, 4, 5, 6, 7, 8, 9]
    assert bank.embeddings[:, 0].tolist() == [10, 11, 2, 3, 4, 5, 6, 7, 8, 9]


def test_batch_larger_than_bank_keeps_the_newest():
    bank = MemoryBank(size=4, dim=3)
    bank.enqueue(*_batch(0, n=3))
    bank.enqueue(*_batch(3, n=6))  # 3..8; sequential writes leave 5..8 in slots 1, 2, 3, 0
    assert bank.labels.tolist() == [8, 5, 6, 7] and int(bank.ptr) == 1 and len(bank) == 4


def test_state_dict_round_trip():
    bank = MemoryBank(size=10, dim=3)
    for start in (0, 4, 8):
        bank.enqueue(*_batch(start))
    restored = MemoryBank(size=10, dim=3)
    restored.load_state_dict(bank.state_dict())
    for name in ("embeddings", "labels", "ptr", "filled"):
        assert torch.equal(getattr(restored, name), getattr(bank, name))
    restored.enqueue(*_batch(12, n=1))
    assert restored.labels[2].item() == 12 and int(restored.ptr) == 3


def test_wrong_shape():
    with pytest.raises(ValueError, match="memory bank of dim 3"):
        MemoryBank(size=4, dim=3).enqueue(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))
