"""bench/train.py: the analytic FLOP formula against FlopCounterMode, and the Trainer mode."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from meter import flop_counter  # noqa: E402

from train import compose, llm_flops  # noqa: E402


def _rope(counter) -> int:
    """FLOPs of the rotary-angle product (``inv_freq @ positions``, 2 x d_head/2 x T once per
    forward), a matmul in transformers 4.x and not in 5.x; the formula leaves it out."""
    counts = counter.get_flop_counts()
    return sum(sum(v.values()) for k, v in counts.items() if k.endswith(".rotary_emb"))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("mode", ["trainable", "input_grad", "none"])
def test_llm_formula_matches_flop_counter(mode: str, attn: str):
    """The formula of each attention implementation equals the count, forward and total."""
    from transformers import LlamaConfig, LlamaForCausalLM

    h, inter, layers, vocab, t = 32, 80, 2, 50, 12
    cfg = LlamaConfig(hidden_size=h, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, vocab_size=vocab,
                      max_position_embeddings=64, tie_word_embeddings=False)  # fmt: skip
    cfg._attn_implementation = attn
    model = LlamaForCausalLM(cfg)
    model.requires_grad_(mode == "trainable")
    embeds = torch.randn(1, t, h, requires_grad=mode == "input_grad")
    counter = flop_counter()
    with counter:
        logits = model(inputs_embeds=embeds).logits
        forward = counter.get_total_flops() - _rope(counter)
        if mode != "none":
            logits.sum().backward()
    want = llm_flops(h, inter, layers, vocab, t, mode, attn=attn)
    assert forward == want["forward"]
    assert counter.get_total_flops() - _rope(counter) == want["forward"] + want["backward"]
    # the attention terms by hand: forward 2 products of 2 T^2 h per layer, backward 5 or 4
    dense = llm_flops(h, inter, layers, vocab, 1, mode, attn=attn)  # T=1: T^2 = T
    assert want["forward"] - t * (dense["forward"] - 4 * layers * h) == 4 * layers * t * t * h
    products = {"eager": 4, "sdpa": 5}[attn] if mode != "none" else 0
    assert want["backward"] - t * (dense["backward"] - products * 2 * layers * h) == (
        products * 2 * layers * t * t * h
    )


def test_llm_formula_rejects_an_unknown_attention_implementation():
    with pytest.raises(ValueError, match="attn must be one of"):
        llm_flops(8, 8, 1, 8, 4, attn="flash_attention_9")


def test_the_bench_config_resolves_without_a_hydra_run_folder():
    from omegaconf import OmegaConf

    cfg = compose(["model=tiny", "data=synthetic", "trainer=cpu"])
    module = OmegaConf.to_container(cfg.stage.module, resolve=True)  # picture_dir needs it
    assert "scalar-bench-" in module["picture_dir"]
    given = compose(["model=tiny", "paths.output_dir=/tmp/elsewhere"])
    assert given.paths.output_dir == "/tmp/elsewhere"


class _Spy(L.Callback):
    def __init__(self):
        self.batches = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.batches.append(batch)


def test_trainer_mode_counts_samples_tokens_and_flops_of_the_real_loop(make_cfg):
    """``--trainer``: the Trainer's own steps, measured; figures against independent counts."""
    from hydra.utils import instantiate
    from meter import bench_trainer

    spy = _Spy()
    res = bench_trainer(
        make_cfg("data.loader.batch_size=2", "data.loader.group_size=1"),
        steps=2,
        warmup=1,
        callbacks=[spy],
    )
    assert (res["strategy"], res["world_size"]) == ("SingleDeviceStrategy", 1)
    assert len(spy.batches) == 3 and res["samples"] == 2 * 2  # timed: steps 2 and 3
    cfg = make_cfg("data.loader.batch_size=2", "data.loader.group_size=1")
    model = instantiate(cfg.model)
    queries = model.bridge.num_queries
    tokens = sum(int(b["attention_mask"].sum()) + 2 * queries for b in spy.batches[1:])
    assert res["tokens_per_s"] * res["seconds"] == pytest.approx(tokens)
    # FLOPs of step 1 recounted outside Lightning: forward + loss + backward on that batch
    module = instantiate(cfg.stage.module)(model=model, loss=instantiate(cfg.loss),
                                           optimizer=None, scheduler=None)  # fmt: skip
    module.train()
    counter = flop_counter()
    with counter:
        module.loss(model(spy.batches[0]), spy.batches[0])["loss"].backward()
    assert res["flops_per_step_per_rank"] == counter.get_total_flops() > 0
