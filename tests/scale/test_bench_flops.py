"""bench/train.py's analytic FLOP formula against FlopCounterMode on a tiny LLaMA."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from train import compose, llm_flops  # noqa: E402


@pytest.mark.parametrize("mode", ["trainable", "input_grad", "none"])
def test_llm_formula_matches_flop_counter(mode: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    h, inter, layers, vocab, t = 32, 80, 2, 50, 12
    cfg = LlamaConfig(hidden_size=h, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, vocab_size=vocab,
                      max_position_embeddings=64, tie_word_embeddings=False)  # fmt: skip
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    model.requires_grad_(mode == "trainable")
    embeds = torch.randn(1, t, h, requires_grad=mode == "input_grad")
    counter = FlopCounterMode(display=False)
    with counter:
        logits = model(inputs_embeds=embeds).logits
        if mode != "none":
            logits.sum().backward()
    want = llm_flops(h, inter, layers, vocab, t, mode)
    assert counter.get_total_flops() == want["forward"] + want["backward"]


def test_the_bench_config_resolves_without_a_hydra_run_folder():
    from omegaconf import OmegaConf

    cfg = compose(["model=tiny", "data=synthetic", "trainer=cpu"])
    module = OmegaConf.to_container(cfg.stage.module, resolve=True)  # picture_dir needs it
    assert "scalar-bench-" in module["picture_dir"]
    given = compose(["model=tiny", "paths.output_dir=/tmp/elsewhere"])
    assert given.paths.output_dir == "/tmp/elsewhere"
