"""``model.llm.init_from``: the LLM starts from a checkpoint's ``model.llm.*`` weights."""

from __future__ import annotations

import pytest
import torch

from scalar.core.errors import UserError
from scalar.model.llm_init import init_llm_from
from tests.model.conftest import tiny_parts


def _save_llm(model, path, extra=None):
    state = {f"model.llm.{k}": v.clone() for k, v in model.llm.state_dict().items()}
    state["model.bridge.x"] = torch.zeros(1)  # other parts are ignored
    state.update(extra or {})
    torch.save({"state_dict": state, "global_step": 3}, path)


def test_llm_weights_are_copied_exactly(make_model, tmp_path):
    source = make_model(seed=1)
    _save_llm(source, tmp_path / "lm.ckpt")
    fresh = make_model(seed=2)
    assert not torch.equal(fresh.llm.lm_head.weight, source.llm.lm_head.weight)
    n = init_llm_from(fresh.llm, tmp_path / "lm.ckpt")
    assert n == len(source.llm.state_dict())
    for k, v in source.llm.state_dict().items():
        assert torch.equal(fresh.llm.state_dict()[k], v), k


def test_build_model_applies_init_from(make_model, tokenizer, tmp_path):
    from scalar.model.build import build_model

    source = make_model(seed=1)
    _save_llm(source, tmp_path / "lm.ckpt")
    torch.manual_seed(5)
    parts = tiny_parts(llm={"init_from": str(tmp_path / "lm.ckpt")})
    built = build_model(tokenizer=tokenizer, **parts)
    assert torch.equal(built.llm.model.embed_tokens.weight, source.llm.model.embed_tokens.weight)
    assert not torch.equal(built.bridge.queries, source.bridge.queries)  # only the LLM


def test_bad_files_are_one_line_errors(make_model, tmp_path):
    model = make_model()
    with pytest.raises(UserError, match="checkpoint file not found"):
        init_llm_from(model.llm, tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read the checkpoint"):
        init_llm_from(model.llm, tmp_path / "junk.ckpt")
    torch.save({"state_dict": {"model.bridge.x": torch.zeros(1)}}, tmp_path / "nollm.ckpt")
    with pytest.raises(UserError, match=r"no 'model.llm.\*' weights"):
        init_llm_from(model.llm, tmp_path / "nollm.ckpt")
    _save_llm(model, tmp_path / "extra.ckpt", {"model.llm.surplus": torch.zeros(2)})
    with pytest.raises(UserError, match="1 unexpected") as err:
        init_llm_from(model.llm, tmp_path / "extra.ckpt")
    assert "\n" not in str(err.value)


def test_another_architecture_is_refused(make_model, tmp_path):
    wide = make_model(llm_config=dict(model_type="llama", hidden_size=48, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2, max_position_embeddings=128))  # fmt: skip
    _save_llm(wide, tmp_path / "wide.ckpt")
    model = make_model()
    before = {k: v.clone() for k, v in model.llm.state_dict().items()}
    with pytest.raises(UserError, match="of another shape"):
        init_llm_from(model.llm, tmp_path / "wide.ckpt")
    assert all(torch.equal(v, model.llm.state_dict()[k]) for k, v in before.items())
