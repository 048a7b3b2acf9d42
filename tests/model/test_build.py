"""Builders: tiny, vicuna7b on the meta device, other HF causal LMs, clear errors."""

import re
from pathlib import Path

import open_clip
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scalar.model.build import build_model, count_parameters
from scalar.model.model import ScalarModel
from tests.conftest import compose_train
from tests.paths import SYNTHETIC

from .conftest import build_batch

MISSING = (FileNotFoundError, InstantiationException)  # hydra wraps the builder's error
CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def _model_cfg(name: str, data_dir: Path, **over):
    root = compose_train([f"model={name}", f"paths.data_dir={data_dir}"])
    for key, value in over.items():
        OmegaConf.update(root, f"model.{key}", value, merge=True)
    return root.model


def _numel(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "name", ["tiny", "vicuna7b", "hf_local", "hf_tiny", "qwen2_7b", "opt_6_7b"]
)
def test_every_config_key_is_commented(name):
    for line in (CONF / f"{name}.yaml").read_text().splitlines():
        if re.match(r"^\s*[A-Za-z_]+:", line):
            assert "#" in line, f"{name}.yaml: uncommented key: {line.strip()}"


def test_tiny_config_instantiates_through_hydra(tmp_path, tokenizer):
    tokenizer.save_pretrained(str(tmp_path / SYNTHETIC / "tokenizer"))
    model = instantiate(_model_cfg("tiny", tmp_path))
    assert isinstance(model, ScalarModel)
    n = _numel(model)
    assert 1_000_000 < n < 3_000_000, n
    assert count_parameters(model, trainable_only=True) == n  # all trainable, from scratch
    assert model.vision.grid_hw == (8, 8) and model.vision.image_size == 64
    assert model.num_prefix == 16 and model.region_tokens == 4
    model.eval()
    batch = build_batch(tokenizer, model.region_tokens)
    out = model(batch)
    assert out["box_pred"].shape == (3, 4) and out["region_emb"].shape == (4, 64)


def test_tiny_config_without_tokenizer_says_what_to_do(tmp_path):
    with pytest.raises(MISSING, match="tokenizer"):
        instantiate(_model_cfg("tiny", tmp_path))


def test_vicuna7b_on_the_meta_device(tmp_path, tokenizer):
    model = instantiate(_model_cfg("vicuna7b", tmp_path), meta_device=True, tokenizer=tokenizer)
    assert all(p.device.type == "meta" for p in model.parameters())
    n_llm = _numel(model.llm)
    assert 6.6e9 < n_llm < 6.8e9, n_llm
    cfg = model.causal_lm.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (4096, 32, 11008)
    assert cfg.vocab_size == 32000  # our small test tokenizer never shrinks the vocabulary
    # ViT-L/14 without its last block, final norm and projection (penultimate-layer features)
    with torch.device("meta"):
        ref = open_clip.create_model("ViT-L-14", device="meta").visual
    blocks = ref.transformer.resblocks
    expected = _numel(ref) - _numel(blocks[-1]) - _numel(ref.ln_post) - ref.proj.numel()
    assert _numel(model.vision) == expected and 2.8e8 < expected < 3.1e8
    assert model.vision.grid_hw == (16, 16) and model.vision.dim == 1024
    assert model.trainable_parameter_names()  # bridge, region, spatial, contrastive
    assert not any(n.startswith(("vision.", "llm.")) for n in model.trainable_parameter_names())


def test_vicuna7b_without_weights_raises_a_clear_error(tmp_path, tokenizer):
    with pytest.raises(MISSING, match=r"model\.(llm\.path|vision\.pretrained)"):
        instantiate(_model_cfg("vicuna7b", tmp_path), tokenizer=tokenizer)
    fake = tmp_path / "clip.bin"
    fake.write_bytes(b"")
    cfg = _model_cfg("vicuna7b", tmp_path, **{"vision.pretrained": str(fake)})
    with pytest.raises(MISSING, match=r"model\.llm\.path"):
        instantiate(cfg, tokenizer=tokenizer)
    cfg = _model_cfg("vicuna7b", tmp_path, **{"llm.path": str(tmp_path / "no-vicuna")})
    cfg.vision.require_pretrained = False
    with pytest.raises(MISSING, match=r"model\.llm\.path"):
        instantiate(cfg)


def test_hf_local_loads_weights_and_tokenizer_from_a_directory(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(5)
    cfg = Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=len(tokenizer) - 4,
    )  # fmt: skip
    saved = AutoModelForCausalLM.from_config(cfg)
    llm_dir = tmp_path / "qwen-micro"
    saved.save_pretrained(str(llm_dir))
    tokenizer.save_pretrained(str(llm_dir))
    over = {
        "llm.path": str(llm_dir),
        "llm.dtype": "float32",
        "vision": {
            "name": "scalar-tiny",
            "image_size": 64,
            "feature_layer": 2,
            "pos_embed": "sincos",
            "require_pretrained": False,  # hf_local refuses a random tower unless told
        },
        "bridge": {"num_queries": 4, "dim": 32, "num_heads": 2, "num_layers": 1},
        "spatial": {"dim": 32, "num_heads": 2},
        "region_tokens": 2,
    }
    model = instantiate(_model_cfg("hf_local", tmp_path, **over))
    lm = model.causal_lm
    assert lm.config.model_type == "qwen2"
    assert lm.get_input_embeddings().weight.shape[0] == len(tokenizer)  # resized up
    w = lm.model.layers[1].mlp.down_proj.weight
    assert torch.equal(w, saved.model.layers[1].mlp.down_proj.weight)
    assert not any(p.requires_grad for p in model.llm.parameters())  # frozen by default
    model.eval()
    out = model(build_batch(tokenizer, model.region_tokens))
    assert out["logits"].shape[-1] == len(tokenizer)


def test_hf_local_without_a_path_says_which_key_to_set(tmp_path):
    with pytest.raises(MISSING, match=r"model\.llm\.path"):
        instantiate(_model_cfg("hf_local", tmp_path))


def test_build_model_direct_call_with_meta_device_reads_nothing(tokenizer, tmp_path):
    model = build_model(
        vision={"name": "scalar-tiny", "pretrained": str(tmp_path / "absent.pt")},
        bridge={"num_queries": 2, "dim": 16, "num_heads": 2, "num_layers": 1},
        llm={"path": None, "config": {"model_type": "llama", "hidden_size": 32,
             "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}},
        tokenizer=tokenizer,
        meta_device=True,
    )  # fmt: skip
    assert next(model.parameters()).device.type == "meta"
