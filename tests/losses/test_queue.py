"""The FIFO queue of negatives: order, overflow, ids and checkpointing."""

from __future__ import annotations

import torch

from sciclr.losses import NegativeQueue


def test_fifo_overwrites_oldest_and_keeps_ids():
    q = NegativeQueue(5)
    q.push(torch.arange(3.0)[:, None].expand(3, 2), torch.tensor([0, 1, 2]))
    q.push(torch.arange(3.0, 6.0)[:, None].expand(3, 2), torch.tensor([3, 4, 5]))
    keys, ids = q.negatives()
    assert len(q) == 5
    assert sorted(ids.tolist()) == [1, 2, 3, 4, 5]  # id 0 was the oldest
    assert torch.equal(keys[:, 0], ids.float())  # each key stays with its id


def test_push_larger_than_queue_keeps_newest():
    q = NegativeQueue(4)
    q.push(torch.arange(10.0)[:, None], torch.arange(10))
    assert sorted(q.negatives()[1].tolist()) == [6, 7, 8, 9]
    q.push(torch.tensor([[10.0]]), torch.tensor([10]))
    assert sorted(q.negatives()[1].tolist()) == [7, 8, 9, 10]


def test_unknown_ids_and_size_zero():
    q = NegativeQueue(3)
    q.push(torch.ones(2, 4))
    assert q.negatives()[1].tolist() == [-1, -1]
    empty = NegativeQueue(0)
    empty.push(torch.ones(2, 4))
    assert len(empty) == 0


def test_state_dict_round_trip_into_fresh_queue():
    q = NegativeQueue(6)
    q.push(torch.randn(4, 3), torch.arange(4))
    fresh = NegativeQueue(6)
    fresh.load_state_dict(q.state_dict())
    assert len(fresh) == 4
    assert torch.equal(fresh.negatives()[0], q.negatives()[0])
    assert torch.equal(fresh.negatives()[1], q.negatives()[1])
    fresh.push(torch.randn(3, 3), torch.arange(4, 7))  # continues where it stopped
    assert sorted(fresh.negatives()[1].tolist()) == [1, 2, 3, 4, 5, 6]
