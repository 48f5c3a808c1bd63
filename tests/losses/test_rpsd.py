"""RPSD: mining keeps every positive and exactly num_negatives negatives, the bank holds teacher embeddings,
zero loss at equality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgekd.errors import ConfigError
from edgekd.losses.rpsd import RPSD, mine_pairs
from tests.losses.batch import D, identical_batch, random_batch


def test_mining_keeps_all_positives_and_exactly_k_hardest_negatives():
    g = torch.Generator().manual_seed(0)
    n, m = 6, 10
    sim_t = torch.randn(n, n + m, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, -1])
    key_labels = torch.cat([labels, torch.tensor([0, 1, 1, 3, 3, 3, 4, 4, 0, -1])])
    positives, negatives = mine_pairs(sim_t, labels, key_labels, num_negatives=3)
    for i in range(n):
        same = [j for j in range(n + m) if j != i and labels[i] >= 0 and key_labels[j] == labels[i]]
        assert torch.nonzero(positives[i]).squeeze(1).tolist() == same
        others = [j for j in range(n + m) if j != i and j not in same]
        hardest = sorted(others, key=lambda j: -sim_t[i, j].item())[:3]
        assert sorted(torch.nonzero(negatives[i]).squeeze(1).tolist()) == sorted(hardest)
    assert not (positives & negatives).any()
    assert not positives.diagonal().any() and not negatives.diagonal().any()


def test_mining_with_fewer_negatives_than_asked():
    labels = torch.tensor([0, 0, 1])
    positives, negatives = mine_pairs(torch.randn(3, 3), labels, labels, num_negatives=5)
    assert negatives.sum(1).tolist() == [1, 1, 2] and positives.sum(1).tolist() == [1, 1, 0]


@pytest.mark.parametrize("kind", ["kl", "mse"])
@pytest.mark.parametrize("batch_keys", ["student", "teacher"])
def test_zero_when_equal_with_a_filled_bank(kind, batch_keys):
    term = RPSD(kind=kind, batch_keys=batch_keys, num_negatives=5, bank_size=12, teacher_dim=D)
    for seed in range(3):  # the bank wraps around by the third batch
        b = identical_batch(seed)
        assert term(b.student, b.teacher, b.labels).item() == pytest.approx(0.0, abs=1e-6)
    assert len(term.bank) == 12


def test_bank_holds_teacher_embeddings_and_student_is_compared_to_them():
    term = RPSD(bank_size=16, teacher_dim=D)
    first, second = random_batch(0), random_batch(1)
    term(first.student, first.teacher, first.labels)
    bank, bank_labels = term.bank.contents()
    torch.testing.assert_close(bank, F.normalize(first.teacher.embedding, dim=1))
    assert torch.equal(bank_labels, first.labels)
    sim_s, sim_t, _ = term.similarities(second.student, second.teacher)
    s, t = F.normalize(second.student.embedding, dim=1), F.normalize(second.teacher.embedding, dim=1)
    torch.testing.assert_close(sim_s, torch.cat([s @ s.T, s @ bank.T], dim=1))
    torch.testing.assert_close(sim_t, torch.cat([t @ t.T, t @ bank.T], dim=1))


def test_mse_is_mean_over_kept_pairs():
    b = random_batch(2)
    term = RPSD(kind="mse", num_negatives=2, bank_size=0)
    sim_s, sim_t, _ = term.similarities(b.student, b.teacher)
    positives, negatives = mine_pairs(sim_t, b.labels, b.labels, 2)
    keep = positives | negatives
    expected = (sim_s - sim_t)[keep].pow(2).mean()
    torch.testing.assert_close(term(b.student, b.teacher, b.labels), expected)


def test_no_enqueue_in_eval_mode():
    term = RPSD(bank_size=16, teacher_dim=D).eval()
    b = random_batch()
    term(b.student, b.teacher, b.labels)
    assert len(term.bank) == 0


def test_bad_options():
    with pytest.raises(ConfigError, match="kind"):
        RPSD(kind="l1", teacher_dim=D)
    with pytest.raises(ConfigError, match="needs teacher_dim"):
        RPSD()
