"""Scale presets: what the DDP / FSDP / DeepSpeed trainer configs turn into."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from tests.conftest import compose_train

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
    model = instantiate(cfg.model)
    units = [m for m in model.modules() if isinstance(m, tuple(policy._module_classes))]
    assert len(units) == cfg.model.llm.config.num_hidden_layers
    assert all(isinstance(m, LlamaDecoderLayer) for m in units)
    ckpt = strategy._activation_checkpointing_kwargs["auto_wrap_policy"]
    assert set(ckpt._module_classes) == set(policy._module_classes)
    assert strategy.kwargs["use_orig_params"] is True


def test_deepspeed_stage3_extends_stage2():
    two = compose_train([*OWN, "trainer=deepspeed_zero2"]).trainer.strategy
    three = compose_train([*OWN, "trainer=deepspeed_zero3"]).trainer.strategy
    assert (two.stage, three.stage) == (2, 3)
    assert three.reduce_bucket_size == two.reduce_bucket_size and three.partition_activations
