"""P x K sampler: composition, seeding, exact resume, small and singleton classes."""

from __future__ import annotations

import pytest
import torch

from nearpos_runtime.training.data import DataError
from nearpos_runtime.training.sampler import ClassBalancedSampler


def labels_of(counts):
    return torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])


def test_batches_are_p_by_k():
    labels = labels_of([10] * 6)
    s = ClassBalancedSampler(labels, classes=3, per_class=4, seed=0)
    for _ in range(20):
        b = s.next_batch()
        assert b.numel() == 12 and b.unique().numel() == 12
        _, counts = labels[b].unique(return_counts=True)
        assert counts.tolist() == [4, 4, 4]


def test_same_seed_same_batches_and_resume():
    labels = labels_of([10] * 6)
    a = ClassBalancedSampler(labels, 3, 4, seed=1)
    b = ClassBalancedSampler(labels, 3, 4, seed=1)
    first = [a.next_batch() for _ in range(5)]
    assert all(torch.equal(x, b.next_batch()) for x in first)
    state = a.state_dict()
    cont = [a.next_batch() for _ in range(5)]
    c = ClassBalancedSampler(labels, 3, 4, seed=99)
    c.load_state_dict(state)
    assert all(torch.equal(x, c.next_batch()) for x in cont)
    other = ClassBalancedSampler(labels, 3, 4, seed=2)
    assert not all(torch.equal(x, other.next_batch()) for x in first)


def test_small_class_replace_warns_or_errors():
    labels = labels_of([10, 2, 10])
    msgs: list[str] = []
    s = ClassBalancedSampler(labels, 3, 4, seed=0, warn=msgs.append)
    assert any("fewer than batch.per_class" in m and "replacement" in m for m in msgs)
    assert s.next_batch().numel() == 12
    with pytest.raises(DataError, match="fewer than batch.per_class = 4"):
        ClassBalancedSampler(labels, 3, 4, seed=0, small_class="error")


def test_singleton_class_error_or_drop():
    labels = labels_of([5, 1, 5, 5])
    with pytest.raises(DataError, match="single sample"):
        ClassBalancedSampler(labels, 2, 3, seed=0)
    msgs: list[str] = []
    s = ClassBalancedSampler(labels, 2, 3, seed=0, singleton_class="drop", warn=msgs.append)
    assert any("dropped 1 class" in m for m in msgs)
    for _ in range(10):
        assert 1 not in labels[s.next_batch()].tolist()


def test_too_few_classes_and_empty():
    with pytest.raises(DataError, match="only 2 usable classes"):
        ClassBalancedSampler(labels_of([5, 5]), 3, 2, seed=0)
    with pytest.raises(DataError, match="empty"):
        ClassBalancedSampler(torch.empty(0, dtype=torch.long), 3, 2, seed=0)
