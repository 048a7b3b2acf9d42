"""The resumable loader: mid-epoch resume, rank shards, the DataLoader order."""

from __future__ import annotations

import pytest
import torch

from scalar.data import resume
from scalar.data.resume import ResumableLoader, make_resumable


def _ids(loader):
    return [b.tolist() for b in loader]


def test_resumable_loader_continues_mid_epoch():
    data = list(range(23))
    a = ResumableLoader(data, batch_size=4, collate_fn=torch.tensor, seed=5)
    epoch0 = _ids(a)
    assert len(epoch0) == len(a) == 6 and sorted(sum(epoch0, [])) == data
    a.set_epoch(1)
    epoch1 = _ids(a)
    assert epoch1 != epoch0 and sorted(sum(epoch1, [])) == data  # a new order per epoch

    b = ResumableLoader(data, batch_size=4, collate_fn=torch.tensor, seed=5)
    it = iter(b)
    first = [next(it).tolist() for _ in range(2)]
    state = b.state_dict()
    assert state == {"epoch": 0, "batches": 2, "seed": 5}
    c = ResumableLoader(data, batch_size=4, collate_fn=torch.tensor, seed=5)
    c.load_state_dict(state)
    c.set_epoch(0)  # Lightning sets the (same) epoch before iterating again
    assert first + _ids(c) == epoch0
    c.set_epoch(1)
    assert _ids(c) == epoch1  # the next epoch starts from its beginning


def test_resumable_loader_shards_ranks(monkeypatch):
    data = list(range(10))
    shards = []
    for rank in range(3):
        monkeypatch.setattr(resume, "rank_world", lambda r=rank: (r, 3))
        loader = ResumableLoader(
            data, batch_size=2, collate_fn=torch.tensor, seed=1, drop_last=False
        )
        shards.append(sum(_ids(loader), []))
        assert len(loader) == 2
    assert all(len(s) == 4 for s in shards)  # padded to equal length
    assert set(sum(shards, [])) == set(data)


def test_dataloader_order_matches_a_shuffled_dataloader_epoch_by_epoch():
    """``order="dataloader"``: the batches of ``DataLoader(shuffle=True, generator=seed)``
    pass after pass (the RL prompts' order), and a mid-epoch resume continues them."""
    from torch.utils.data import DataLoader

    data = list(range(11))
    plain = DataLoader(data, batch_size=3, shuffle=True,
                       generator=torch.Generator().manual_seed(7))  # fmt: skip
    passes = [[b.tolist() for b in plain] for _ in range(3)]
    ours = ResumableLoader(data, batch_size=3, collate_fn=torch.tensor, seed=7, order="dataloader")
    for epoch, want in enumerate(passes):
        ours.set_epoch(epoch)
        assert _ids(ours) == want
    assert passes[0] != passes[1]
    it = iter(ours)  # epoch 2 again: stop after one batch and resume
    first = next(it).tolist()
    again = ResumableLoader(data, batch_size=3, collate_fn=torch.tensor, seed=7, order="dataloader")
    again.load_state_dict(ours.state_dict())
    assert [first, *_ids(again)] == passes[2]
    with pytest.raises(ValueError, match="order must be one of"):
        ResumableLoader(data, batch_size=3, order="random")


def test_make_resumable_only_rebuilds_plain_shuffled_loaders():
    from torch.utils.data import DataLoader

    plain = DataLoader(list(range(8)), batch_size=3, shuffle=True, drop_last=True)
    wrapped = make_resumable(plain, seed=0)
    assert isinstance(wrapped, ResumableLoader) and wrapped.shuffle and wrapped.drop_last
    assert len(wrapped) == len(plain) == 2
    custom = DataLoader(list(range(8)), batch_size=3, sampler=[7, 6, 5])
    assert make_resumable(custom, seed=0) is custom


def test_index_sampler_mode_resumes_from_the_mixture_position():
    """The task mixture goes through the same loader: its sampler owns the state."""
    from scalar.data.dataset import MixtureSampler

    tasks = ["rec"] * 12 + ["roc"] * 8
    data = list(range(len(tasks)))

    def loader():
        sampler = MixtureSampler(tasks, {"rec": 1.0, "roc": 0.5}, seed=3)
        return ResumableLoader(data, 4, collate_fn=torch.tensor, index_sampler=sampler), sampler

    a, sampler = loader()
    whole = _ids(a)
    assert len(a) == 5 and sum(whole, []) == sampler.order(0)  # batches follow the mixture
    b, sampler_b = loader()
    it = iter(b)
    head = [next(it).tolist() for _ in range(2)]
    sampler_b.consume(8)  # the datamodule advances the sampler as batches reach training
    state = b.state_dict()
    assert state == {"seed": 3, "epoch": 0, "position": 8}
    c, _ = loader()
    c.load_state_dict(state)
    c.set_epoch(0)
    assert head + _ids(c) == whole
    c.set_epoch(1)
    assert sum(_ids(c), []) == sampler.order(1)
