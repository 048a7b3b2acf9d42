"""Batch row selection, the resumable loader, LR schedules and command-line checks."""

from __future__ import annotations

import math

import pytest
import torch

from scalar.core.batch import row_image, rows_by_task, select_rows
from scalar.data import resume
from scalar.data.resume import ResumableLoader, make_resumable
from scalar.train.cli import check_overrides
from scalar.train.schedule import warmup_cosine_factor
from tests.conftest import CONF


def _batch():
    return {
        "input_ids": torch.tensor([[1, 2], [3, 4], [5, 6]]),
        "images": torch.arange(3.0).view(3, 1),
        "target_boxes": torch.tensor([[0.0] * 4, [1.0] * 4, [2.0] * 4, [3.0] * 4]),
        "target_batch": torch.tensor([0, 2, 2, 1]),
        "region_boxes": torch.tensor([[9.0] * 4]),
        "region_batch": torch.tensor([1]),
        "concept_ids": torch.tensor([7, 8, 9]),
        "concept_batch": torch.tensor([2, 0, 2]),
        "samples": ["s0", "s1", "s2"],
        "note": "kept",
    }


def test_select_rows_keeps_items_of_selected_rows_in_row_major_order():
    out = select_rows(_batch(), [2, 0])
    assert out["input_ids"].tolist() == [[5, 6], [1, 2]]
    assert out["images"].flatten().tolist() == [2.0, 0.0]
    # targets of old row 2 (now 0) first, then old row 0 (now 1)
    assert out["target_boxes"][:, 0].tolist() == [1.0, 2.0, 0.0]
    assert out["target_batch"].tolist() == [0, 0, 1]
    assert out["region_boxes"].shape == (0, 4) and out["region_batch"].tolist() == []
    assert out["concept_ids"].tolist() == [7, 9, 8] and out["concept_batch"].tolist() == [0, 0, 1]
    assert out["samples"] == ["s2", "s0"] and out["note"] == "kept"
    with pytest.raises(IndexError):
        select_rows(_batch(), [3])


def test_select_rows_keeps_only_the_images_of_selected_rows():
    batch = dict(
        _batch(), images=torch.tensor([[10.0], [11.0]]), image_index=torch.tensor([1, 0, 1])
    )
    out = select_rows(batch, [2, 1])
    assert out["images"].flatten().tolist() == [10.0, 11.0]
    assert out["image_index"].tolist() == [1, 0]  # row 2 shows image 11, row 1 image 10
    assert [row_image(out, r).item() for r in (0, 1)] == [11.0, 10.0]
    one = select_rows(batch, [0, 2])
    assert one["images"].flatten().tolist() == [11.0] and one["image_index"].tolist() == [0, 0]


def test_rows_by_task():
    class S:
        def __init__(self, task):
            self.task, self.meta = task, {}

    samples = [S("rec"), S("chain"), S("caption"), S("rec")]
    assert rows_by_task(samples, ("rec", "caption")) == {"rec": [0, 3], "caption": [2]}


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


def test_warmup_cosine_factor_hand_values():
    assert warmup_cosine_factor(0, 4, 104, 0.1) == 0.25
    assert warmup_cosine_factor(3, 4, 104, 0.1) == 1.0
    assert warmup_cosine_factor(4, 4, 104, 0.1) == 1.0
    assert warmup_cosine_factor(54, 4, 104, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway
    assert warmup_cosine_factor(104, 4, 104, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(500, 4, 104, 0.1) == pytest.approx(0.1)  # stays at the floor
    assert warmup_cosine_factor(500, 4, math.inf, 0.1) == 1.0  # time-limited runs: constant


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["model=nope"],
            "unknown model 'nope'; valid names: hf_local, hf_tiny, opt_6_7b, qwen2_7b, tiny, vicuna7b",
        ),
        (["-m", "loss=align,nada"], "unknown loss 'nada'"),
        (["trainer=gpu", "optim.lrr=1"], "error: Could not override 'optim.lrr'"),
        (["seed=[1"], "error: bad override"),
    ],
)
def test_check_overrides_reports_one_line(args, expected):
    message = check_overrides(args, CONF)
    assert message is not None and expected in message and "\n" not in message


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-m", "optim.lr=1e-3,2e-3", "loss=align,infonce"],
        ["optim.lr=interval(1e-4,1e-3)"],
        ["experiment=ablation_contrastive", "trainer=ddp", "+foo=1"],
        ["hparams_search=optuna", "--config-name", "train"],
    ],
)
def test_check_overrides_accepts_good_command_lines(args):
    assert check_overrides(args, CONF) is None
