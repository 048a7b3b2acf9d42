"""Streaming from WebDataset shards gives the in-memory samples, order and exact resume."""

from __future__ import annotations

import tarfile

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from scalar.stages.align import sample_ids


def _datamodule(cfg, streaming=None):
    with open_dict(cfg):
        cfg.data.streaming = str(streaming) if streaming else None
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm


def _batches(dm, k, loader=None):
    out = []
    for batch in loader if loader is not None else dm.train_dataloader():
        dm.on_before_batch_transfer(batch, 0)  # advances the sampler as in training
        out.append(batch)
        if len(out) == k:
            break
    return out


def _same(a, b):
    assert sample_ids(a) == sample_ids(b)
    for s, t in zip(a["samples"], b["samples"]):
        assert (s.task, s.prompt, s.target, s.regions, s.target_boxes, s.meta) == (
            t.task, t.prompt, t.target, t.regions, t.target_boxes, t.meta
        )  # fmt: skip
    for key in ("images", "input_ids", "labels", "attention_mask", "target_boxes"):
        assert torch.equal(a[key], b[key]), key


@pytest.fixture
def sharded(make_cfg, tmp_path):
    from scalar.data.shards import write_shards

    cfg = make_cfg("data.loader.batch_size=4")
    memory = _datamodule(cfg)
    out = tmp_path / "shards"
    write_shards(memory.samples, out, shard_size=16)
    return cfg, memory, out


def test_shards_hold_every_sample_with_its_image_bytes(sharded):
    cfg, memory, out = sharded
    n = len(memory.samples["train"])
    tars = sorted(out.glob("train-*.tar"))
    assert len(tars) == -(-n // 16)
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
    assert sorted(names[:2]) == ["000000000.png", "000000000.sample.pyd"]
    first = memory.samples["train"][0]
    with tarfile.open(tars[0]) as tar:
        assert tar.extractfile("000000000.png").read() == open(first.image.path, "rb").read()


def test_streaming_matches_memory_in_order_and_resumes_mid_shard(sharded):
    cfg, memory, out = sharded
    stream = _datamodule(cfg, out)
    assert set(stream.samples) == set(memory.samples)
    for split in memory.samples:
        assert len(stream.samples[split]) == len(memory.samples[split])
    assert list(stream.sampler) == list(memory.sampler)
    want = _batches(memory, 5)
    got = _batches(stream, 5)
    for a, b in zip(want, got):
        _same(a, b)
    val_a, val_b = next(iter(memory.val_dataloader()[0])), next(iter(stream.val_dataloader()[0]))
    _same(val_a, val_b)

    # resume: state after 2 batches (position 8, mid first shard of 16) -> the next 3 batches
    first = _datamodule(cfg, out)
    _batches(first, 2)
    state = first.state_dict()
    assert state["sampler"]["position"] == 8
    resumed = instantiate(cfg.data)
    resumed.load_state_dict(state)
    resumed.setup("fit")
    for a, b in zip(want[2:], _batches(resumed, 3)):
        _same(a, b)


def test_missing_index_is_a_clear_error(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="no shard index"):
        _datamodule(make_cfg(), tmp_path / "nowhere")


def test_shard_cli_writes_every_split(tiny_corpus, make_cfg, tmp_path, capsys):
    import json

    from scalar.data.__main__ import main

    out = tmp_path / "cli"
    assert main(["shard", f"paths.data_dir={tiny_corpus}", f"out={out}", "shard_size=50"]) == 0
    index = json.loads((out / "index.json").read_text())
    memory = _datamodule(make_cfg())
    assert index["splits"]["train"]["tasks"] == [s.task for s in memory.samples["train"]]
    n = len(memory.samples["train"])
    assert len(list(out.glob("train-*.tar"))) == -(-n // 50)
    assert main(["shard", f"paths.data_dir={tiny_corpus}"]) == 2
    assert "shard needs out=<dir>" in capsys.readouterr().err
