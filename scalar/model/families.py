"""What differs between LLM families: special-token roles and LoRA target modules.

- ``family_ids``: the eos, pad and bos ids a run uses, from the tokenizer (the model's
  generation config when the tokenizer names no eos): bos may be missing (Qwen2) or equal
  eos (OPT, GPT-2); a missing pad reuses eos (padding is masked everywhere).
- ``lora_targets``: ``target_modules`` presets per ``model_type`` (LLaMA / Vicuna,
  Mistral, Qwen2, OPT, GPT-2, GPT-NeoX, Falcon, ...), and a rule for the others: the
  attention's ``q_proj`` / ``v_proj`` when the model has them, otherwise one error listing
  the linear layers found, so the user can set ``model.llm.lora.target_modules``.
"""

from __future__ import annotations

from torch import nn

QV = ["q_proj", "v_proj"]
LORA_TARGETS: dict[str, list[str]] = {
    "llama": QV,
    "mistral": QV,
    "mixtral": QV,
    "qwen2": QV,
    "qwen2_moe": QV,
    "qwen3": QV,
    "gemma": QV,
    "gemma2": QV,
    "phi3": ["qkv_proj"],
    "phi": QV,
    "opt": QV,
    "gptj": QV,
    "gpt2": ["c_attn"],
    "gpt_bigcode": ["c_attn"],
    "gpt_neox": ["query_key_value"],
    "falcon": ["query_key_value"],
    "bloom": ["query_key_value"],
    "mpt": ["Wqkv"],
}


def family_ids(tokenizer, generation_eos: int | None = None) -> tuple[int, int, int | None]:
    """``(eos, pad, bos)`` ids of a run (see the module docstring)."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else generation_eos
    if eos is None:
        raise ValueError(
            "the tokenizer has no eos token: load it with scalar.core.tokenizer.load_tokenizer "
            "(which adds </s> as eos) or set eos_token in its tokenizer_config.json"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return int(eos), int(pad), tokenizer.bos_token_id


def _linear_leaves(model: nn.Module) -> list[str]:
    """Distinct last names of the linear-like modules of ``model`` (Linear or GPT-2's Conv1D)."""
    names = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        linear = isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
        if linear and weight is not None and weight.dim() == 2:
            leaf = name.rsplit(".", 1)[-1]
            if leaf not in names:
                names.append(leaf)
    return names


def lora_targets(model: nn.Module, requested=None) -> list[str]:
    """``target_modules`` for ``model``: ``requested`` when given (checked to exist), else
    the preset of its ``model_type``, else the q/v rule; one clear error when nothing fits."""
    leaves = _linear_leaves(model)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if requested not in (None, "auto"):
        wanted = [requested] if isinstance(requested, str) else list(requested)
        missing = [t for t in wanted if t not in leaves]
        if missing:
            raise ValueError(
                f"model.llm.lora.target_modules {missing} are not layers of this {model_type} "
                f"model; its linear layers are {leaves} (or use target_modules: auto)"
            )
        return wanted
    preset = LORA_TARGETS.get(str(model_type))
    if preset is not None and all(t in leaves for t in preset):
        return list(preset)
    if all(t in leaves for t in QV):
        return list(QV)
    raise ValueError(
        f"no LoRA preset for model_type {model_type!r} and no q_proj/v_proj layers: set "
        f"model.llm.lora.target_modules to some of its linear layers {leaves}"
    )
