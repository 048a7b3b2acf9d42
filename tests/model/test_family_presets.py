"""Model presets of the families: qwen2_7b and opt_6_7b shapes on the meta device, hf_tiny
around a family directory, hf_local refusing a random tower unless told."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scalar.model.model import ScalarModel
from tests.conftest import compose_train
from tests.families import family_dir

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def _cfg(name: str, **over):
    root = compose_train([f"model={name}", "paths.data_dir=/nonexistent"])
    for key, value in over.items():
        OmegaConf.update(root, f"model.{key}", value, merge=True)
    return root.model


@pytest.mark.parametrize(
    ("name", "model_type", "low", "high", "tied"),
    [("qwen2_7b", "qwen2", 7.5e9, 7.7e9, False), ("opt_6_7b", "opt", 6.6e9, 6.7e9, True)],
)
def test_7b_presets_on_the_meta_device(tokenizer, name, model_type, low, high, tied):
    model = instantiate(_cfg(name), meta_device=True, tokenizer=tokenizer)
    assert all(p.device.type == "meta" for p in model.parameters())
    lm = model.causal_lm
    assert lm.config.model_type == model_type
    n = sum(p.numel() for p in lm.parameters())  # tied weights are counted once
    assert low < n < high, n
    assert model.new_tokens is not None and model.new_tokens.tied is tied
    names = model.trainable_parameter_names()
    assert "new_tokens.input_rows" in names
    assert not any(n.startswith(("vision.", "llm.")) for n in names)  # frozen, no LoRA asked


def test_hf_tiny_around_a_family_directory(tmp_path_factory):
    path = family_dir(tmp_path_factory, "opt")
    model = instantiate(_cfg("hf_tiny", **{"llm.path": str(path)}))
    assert isinstance(model, ScalarModel) and model.causal_lm.config.model_type == "opt"
    assert model.new_tokens is None  # the whole LLM trains, its own rows included
    assert all(p.requires_grad for p in model.parameters())
    frozen = instantiate(_cfg("hf_tiny", **{"llm.path": str(path), "llm.freeze": True,
                                            "trainable.llm": "auto"}))  # fmt: skip
    names = frozen.trainable_parameter_names()
    assert "new_tokens.input_rows" in names and not any(n.startswith("llm.") for n in names)


def test_hf_local_refuses_a_random_tower(tmp_path_factory):
    path = family_dir(tmp_path_factory, "gpt2")
    with pytest.raises((FileNotFoundError, InstantiationException),
                       match="model.vision.require_pretrained=false"):  # fmt: skip
        instantiate(_cfg("hf_local", **{"llm.path": str(path)}))
