"""Scale presets: what the DDP / FSDP / DeepSpeed trainer configs turn into."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from scalar.core.errors import UserError
from scalar.train.strategies import UniformDtypeWrapPolicy
from tests.conftest import compose_train
from tests.paths import SYNTHETIC

OWN = ["paths.output_dir=/tmp/scalar-test-run"]


def test_ddp_finds_unused_parameters_and_multinode_composes():
    cfg = compose_train([*OWN, "trainer=ddp", "trainer.num_nodes=4"])
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert cfg.trainer.num_nodes == 4 and cfg.trainer.precision == "bf16-mixed"


def test_fsdp_bf16_mixed_precision_and_policy_on_the_tiny_model(make_cfg):
    from lightning.pytorch.plugins.precision import FSDPPrecision
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    cfg = make_cfg("trainer=fsdp")
    assert cfg.trainer.precision == "bf16-mixed"
    mp = FSDPPrecision(cfg.trainer.precision).mixed_precision_config
    assert mp.param_dtype == mp.reduce_dtype == torch.bfloat16
    strategy = instantiate(cfg.trainer.strategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert isinstance(policy, UniformDtypeWrapPolicy)
    model = instantiate(cfg.model)
    units = [m for m in model.modules() if isinstance(m, tuple(policy._module_classes))]
    assert len(units) == cfg.model.llm.config.num_hidden_layers
    assert all(isinstance(m, LlamaDecoderLayer) for m in units)
    ckpt = strategy._activation_checkpointing_kwargs["auto_wrap_policy"]
    assert set(ckpt._module_classes) == set(policy._module_classes)
    assert strategy.kwargs["use_orig_params"] is True
    # the tiny model is all fp32: the rest stays in the root unit
    assert set(policy._run_policy(model, set(), {})) == set(units)


def _toy() -> nn.Module:
    """Frozen bf16 'tower' with two blocks and a stem, trainable fp32 'bridge' and head."""
    tower = nn.Sequential(nn.Linear(4, 4), nn.TransformerEncoderLayer(4, 1, 8), nn.Linear(4, 4))
    tower.append(nn.TransformerEncoderLayer(4, 1, 8))
    tower.requires_grad_(False).to(torch.bfloat16)
    bridge = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 6))
    return nn.ModuleDict({"tower": tower, "bridge": bridge, "head": nn.Linear(6, 2)})


def test_uniform_dtype_policy_gives_trainable_parts_their_own_units():
    policy = UniformDtypeWrapPolicy(["torch.nn.TransformerEncoderLayer"])
    model = _toy()
    units = set(policy._run_policy(model, set(), {}))
    blocks = {model["tower"][1], model["tower"][3]}
    # blocks by class; trainable fp32 subtrees as whole units; frozen bf16 stem in the root
    assert units == blocks | {model["bridge"], model["head"]}
    root_left = [p for p in model.parameters() if not any(p is q for u in units
                                                          for q in u.parameters())]  # fmt: skip
    assert root_left and {p.dtype for p in root_left} == {torch.bfloat16}
    # nothing to split when one dtype is left outside the blocks
    model.to(torch.float32)
    assert set(policy._run_policy(model, set(), {})) == blocks


def test_uniform_dtype_policy_refuses_a_unit_it_cannot_make_uniform():
    policy = UniformDtypeWrapPolicy(["torch.nn.TransformerEncoderLayer"])
    model = _toy()
    model["tower"][0].to(torch.float16)  # frozen parameters in two dtypes: one root unit
    with pytest.raises(UserError, match=r"would mix dtypes .*bfloat16.*float16"):
        policy._run_policy(model, set(), {})


def test_fsdp_block_checkpointing_turns_off_transformers_own(make_cfg):
    from scalar.train.strategies import recompute_once

    cfg = make_cfg("trainer=fsdp", "model.llm.gradient_checkpointing=true")
    model = instantiate(cfg.model)
    # transformers 5 renamed is_gradient_checkpointing (4.x) to is_activation_checkpointing
    new = hasattr(model.llm, "is_activation_checkpointing")
    flag = "is_activation_checkpointing" if new else "is_gradient_checkpointing"
    assert getattr(model.llm, flag)
    assert not recompute_once(instantiate(make_cfg("trainer=ddp").trainer.strategy), model)
    assert getattr(model.llm, flag)  # DDP checkpoints nothing itself
    assert recompute_once(instantiate(cfg.trainer.strategy), model)
    assert not getattr(model.llm, flag)


def test_deepspeed_stage3_extends_stage2():
    two = compose_train([*OWN, "trainer=deepspeed_zero2"]).trainer.strategy
    three = compose_train([*OWN, "trainer=deepspeed_zero3"]).trainer.strategy
    assert (two.stage, three.stage) == (2, 3)
    assert three.reduce_bucket_size == two.reduce_bucket_size and three.partition_activations


def test_fsdp_units_of_the_vicuna7b_model_built_on_meta(tiny_corpus):
    """The real 7B shapes (meta device, no weights): one dtype per unit, blocks as units."""
    cfg = compose_train([
        *OWN, "model=vicuna7b", "trainer=fsdp", "model.meta_device=true",
        "model.vision.require_pretrained=false", "model.llm.require_weights=false",
        f"model.tokenizer_path={tiny_corpus}/{SYNTHETIC}/tokenizer",
    ])  # fmt: skip
    model = instantiate(cfg.model)
    policy = instantiate(cfg.trainer.strategy.auto_wrap_policy)
    units = policy._run_policy(model, set(), {})
    kinds = {}
    for u in units:
        kinds.setdefault(type(u).__name__, []).append(u)
    assert len(kinds.pop("LlamaDecoderLayer")) == 32
    assert len(kinds.pop("ResidualAttentionBlock")) == 23  # ViT-L/14 up to the penultimate
    assert {k: len(v) for k, v in kinds.items()} == {
        "QueryBridge": 1, "RegionPromptEncoder": 1, "SpatialDecoder": 1, "Linear": 3,
        "NewTokenRows": 1,  # the frozen LLM's trainable rows of the added tokens
    }  # fmt: skip
    inside = {id(p) for u in units for p in u.parameters()}
    for u in units:
        assert len({p.dtype for p in u.parameters()}) == 1, type(u).__name__
    root = [(n, p) for n, p in model.named_parameters() if id(p) not in inside]
    assert {p.dtype for _, p in root} == {torch.bfloat16}  # embeddings, head, norm, stem
    assert not any(p.requires_grad for _, p in root)
    assert any(n.startswith("llm.") and "embed_tokens" in n for n, _ in root)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 6.9e9 < frozen < 7.1e9 and trainable < 0.1e9  # bf16 LLM + tower; fp32 heads
