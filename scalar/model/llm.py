"""The language model: any ``transformers`` causal LM, from a config or a local directory.

Never downloads: configs build a random-init model, directories load with
``local_files_only``. LoRA adapters come from ``peft``; activation checkpointing works
together with them (non-reentrant checkpoints plus input embeddings that require grad).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEFAULT_LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "auto"}


def set_offline() -> None:
    """Forbid the Hugging Face libraries any network access."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def resolve_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}
    name = aliases.get(name, name)
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)")
    return getattr(torch, name)


def check_llm_path(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"LLM directory not found or has no config.json: {path} (set model.llm.path to a "
            "local Hugging Face model directory)"
        )
    return path


def llm_config(config: Mapping | None, path: str | Path | None, tokenizer=None):
    """A ``PretrainedConfig`` from a local directory (preferred) or a dict with ``model_type``."""
    from transformers import AutoConfig

    if path is not None:
        cfg = AutoConfig.from_pretrained(str(check_llm_path(path)), local_files_only=True)
        if tokenizer is not None and len(tokenizer) > getattr(cfg, "vocab_size", len(tokenizer)):
            cfg.vocab_size = len(tokenizer)
        return cfg
    if config is None:
        raise ValueError("set model.llm.config (a dict with model_type) or model.llm.path")
    kwargs = dict(config)
    model_type = kwargs.pop("model_type", None)
    if model_type is None:
        raise ValueError("model.llm.config needs a model_type (llama, opt, qwen2, ...)")
    if tokenizer is not None:
        kwargs["vocab_size"] = max(int(kwargs.get("vocab_size", 0)), len(tokenizer))
        for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
            tok_id = getattr(tokenizer, key, None)
            if tok_id is not None:
                kwargs.setdefault(key, tok_id)
    return AutoConfig.for_model(model_type, **kwargs)


def build_llm(
    config: Mapping | None = None,
    path: str | Path | None = None,
    tokenizer=None,
    freeze: bool = True,
    lora: Mapping | None = None,
    gradient_checkpointing: bool = False,
    dtype: Any = None,
    attn_implementation: str | None = "sdpa",
    load_weights: bool = True,
) -> nn.Module:
    """A causal LM; with ``lora`` a ``peft`` model whose adapters are the only trainables
    when ``freeze``. ``load_weights=False`` builds from the directory's config only (used
    on the meta device).
    """
    from transformers import AutoModelForCausalLM

    set_offline()
    dtype = resolve_dtype(dtype)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if path is not None and load_weights:
        model = AutoModelForCausalLM.from_pretrained(
            str(check_llm_path(path)), local_files_only=True, **kwargs
        )
        rows = model.get_input_embeddings().weight.shape[0]
        if tokenizer is not None and len(tokenizer) > rows:
            model.resize_token_embeddings(len(tokenizer))
    else:
        cfg = llm_config(config, path, tokenizer)
        model = AutoModelForCausalLM.from_config(cfg, **kwargs)
        rows = model.get_input_embeddings().weight.shape[0]
        if tokenizer is not None and len(tokenizer) > rows:
            model.resize_token_embeddings(len(tokenizer))
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    if gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model.config.use_cache = False
        model.enable_input_require_grads()
    if lora:
        model = add_lora(model, lora)
    return model


def add_lora(model: nn.Module, lora: Mapping) -> nn.Module:
    """Wrap ``model`` with LoRA adapters (``r``, ``alpha``, ``dropout``, ``target_modules``;
    ``auto``: the family's preset, see :func:`scalar.model.families.lora_targets`)."""
    from peft import LoraConfig, get_peft_model

    from scalar.model.families import lora_targets

    spec = {**DEFAULT_LORA, **dict(lora)}
    cfg = LoraConfig(
        r=int(spec["r"]),
        lora_alpha=float(spec["alpha"]),
        lora_dropout=float(spec["dropout"]),
        target_modules=lora_targets(model, spec["target_modules"]),
        bias="none",
    )
    # get_peft_model freezes the base weights; the caller decides what else trains
    return get_peft_model(model, cfg)


@functools.cache
def _cache_name(forward) -> str | None:
    params = inspect.signature(forward).parameters
    return next((n for n in ("cache", "past_key_values") if n in params), None)


def decoder_stack(causal_lm: nn.Module) -> nn.Module:
    """The decoder stack under the LM head (``LlamaForCausalLM.model``): ``get_decoder()``,
    else the base model (transformers 4.56.0's generic ``get_decoder`` returns None)."""
    decoder = causal_lm.get_decoder()
    return decoder if decoder is not None else causal_lm.base_model


def cache_argument(decoder: nn.Module) -> str:
    """The keyword of ``decoder.forward`` (and field of its output) holding the KV cache:
    ``cache`` in current transformers, ``past_key_values`` before (deprecated since 5.x).
    Wrappers whose forward takes ``**kwargs`` (FSDP, DDP) are looked through."""
    module = decoder
    while (name := _cache_name(type(module).forward)) is None:
        module = getattr(module, "module", None)
        if not isinstance(module, nn.Module):
            break
    return name or "past_key_values"


def base_causal_lm(llm: nn.Module) -> nn.Module:
    """The transformers model under an optional peft wrapper (LoRA layers stay injected)."""
    get_base = getattr(llm, "get_base_model", None)
    return get_base() if get_base is not None else llm


def is_lora(llm: nn.Module) -> bool:
    return hasattr(llm, "peft_config")
