"""Builders called from the Hydra ``model`` group (``_target_: scalar.model.build.build_model``)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from scalar.core.config import plain
from scalar.model.bridge import QueryBridge
from scalar.model.llm import build_llm, check_llm_path, set_offline
from scalar.model.model import ScalarModel
from scalar.model.new_tokens import NewTokenRows, new_token_ids
from scalar.model.region import RegionPromptEncoder
from scalar.model.spatial import SpatialDecoder
from scalar.model.vision import VisionTower


def _spec(cfg: Any) -> dict:
    """A part's config as a dict of plain values (``None``: empty)."""
    if cfg is None:
        return {}
    return {k: _spec(v) if isinstance(v, Mapping) else v for k, v in dict(plain(cfg)).items()}


def _load_tokenizer(tokenizer, tokenizer_path, llm_path):
    if tokenizer is not None:
        return tokenizer
    from scalar.core.tokenizer import load_tokenizer

    path = tokenizer_path if tokenizer_path is not None else llm_path
    if path is None:
        raise FileNotFoundError(
            "no tokenizer: set model.tokenizer_path (or model.llm.path, whose tokenizer is used)"
        )
    return load_tokenizer(path)


def check_weights(vision: Mapping, llm: Mapping) -> None:
    """Fail fast, before building anything, on weights the config needs but cannot find
    (the LLM's first: its directory also holds the run's tokenizer)."""
    path = llm.get("path")
    if path is not None:
        check_llm_path(path)
    elif llm.get("require_weights"):
        raise FileNotFoundError(
            "this model needs pretrained LLM weights: set model.llm.path to a local Hugging "
            "Face model directory (weights and tokenizer)"
        )
    pre = vision.get("pretrained")
    if pre is not None and not Path(pre).is_file():
        raise FileNotFoundError(
            f"vision tower weights not found: {pre} (set model.vision.pretrained to a local "
            "open_clip checkpoint file)"
        )
    if pre is None and vision.get("require_pretrained"):
        raise FileNotFoundError(
            f"vision tower {vision.get('name')!r} needs pretrained weights: set "
            "model.vision.pretrained to a local open_clip checkpoint file (or "
            "model.vision.require_pretrained=false to train on a random tower)"
        )


def build_model(
    vision: Mapping,
    bridge: Mapping,
    llm: Mapping,
    region: Mapping | None = None,
    spatial: Mapping | None = None,
    tokenizer_path: str | None = None,
    tokenizer=None,
    region_tokens: int = 4,
    contrastive_dim: int = 128,
    concept_encoder: str = "embed",
    objectness: bool = False,
    trainable: Mapping | None = None,
    meta_device: bool = False,
    frozen_dtype: str | None = None,
) -> ScalarModel:
    """Build the ScalarModel. ``meta_device=True`` builds every part on ``torch.device('meta')``
    from configs only (no weights are read: for tests, parameter counts and benchmarks).

    ``vision``: VisionTower kwargs. ``bridge``: QueryBridge kwargs except the dims.
    ``llm``: ``config`` (dict with model_type) and/or ``path`` (local HF directory),
    ``freeze``, ``lora``, ``gradient_checkpointing``, ``dtype``, ``require_weights``,
    ``init_from`` (a checkpoint whose ``model.llm.*`` weights replace the built LLM's).
    ``region`` / ``spatial``: RegionPromptEncoder / SpatialDecoder kwargs except the dims.
    ``objectness``: add the class-agnostic per-patch objectness head (``ScalarModel``).
    ``trainable``: a ``set_trainable`` spec applied last; ``llm: auto`` is ``lora`` with
    ``llm.lora``, else trainable unless ``llm.freeze``; ``new_tokens`` (default true) gives
    a frozen or LoRA LLM trainable rows for the added tokens and eos (``NewTokenRows``).
    ``frozen_dtype`` (e.g. ``bfloat16``): cast the frozen parameters (and the buffers of
    wholly frozen modules) to it after ``trainable``; trainable ones stay as built (fp32
    master weights), and the optimizer only ever sees those.
    """
    set_offline()
    vision, bridge, llm = _spec(vision), _spec(bridge), _spec(llm)
    region, spatial = _spec(region), _spec(spatial)
    if meta_device:
        vision["pretrained"] = None  # nothing is read on the meta device
    else:
        check_weights(vision, llm)
    tok = _load_tokenizer(tokenizer, tokenizer_path, llm.get("path"))
    llm_kwargs = {k: v for k, v in llm.items() if k not in ("require_weights", "init_from")}
    spec = resolve_trainable(_spec(trainable), llm_kwargs)
    ctx = torch.device("meta") if meta_device else nullcontext()
    with ctx:
        tower = VisionTower(**vision)
        lm = build_llm(tokenizer=tok, load_weights=not meta_device, **llm_kwargs)
        if llm.get("init_from") and not meta_device:  # text-pretrained weights (stage=lm)
            from scalar.model.llm_init import init_llm_from

            init_llm_from(lm, llm["init_from"])
        hidden = lm.get_input_embeddings().embedding_dim
        query_bridge = QueryBridge(tower.dim, hidden, **bridge)
        region_enc = RegionPromptEncoder(
            dim=hidden, in_dim=tower.dim, num_tokens=region_tokens, **region
        )
        spatial_cfg = {"dim": hidden, **spatial}
        decoder = SpatialDecoder(in_dim=hidden, vis_dim=tower.dim, **spatial_cfg)
        model = ScalarModel(
            tower,
            query_bridge,
            lm,
            region_enc,
            decoder,
            tok,
            contrastive_dim=contrastive_dim,
            concept_encoder=concept_encoder,
            objectness=objectness,
        )
        if spec and spec.get("new_tokens", True) and spec.get("llm") is not True:
            attach_new_tokens(model)
    if spec:
        model.set_trainable(spec)
    if frozen_dtype:
        cast_frozen(model, frozen_dtype)
    return model


def resolve_trainable(spec: Mapping, llm: Mapping) -> dict:
    """``spec`` with ``llm: auto`` resolved; LoRA adapters that would stay frozen are an error."""
    spec = dict(spec or {})
    lora = bool(llm.get("lora"))
    if spec.get("llm") == "auto":
        spec["llm"] = "lora" if lora else not llm.get("freeze", True)
    if lora and spec.get("llm") is False:
        raise ValueError(
            "model.llm.lora adds LoRA adapters but model.trainable.llm=false would freeze "
            "them: set model.trainable.llm=lora (or auto)"
        )
    return spec


def attach_new_tokens(model: ScalarModel) -> None:
    """Give ``model`` trainable rows for the added tokens and eos (see ``NewTokenRows``)."""
    lm = model.causal_lm
    ids = new_token_ids(model.tokenizer)
    model.new_tokens = NewTokenRows(ids, lm.get_input_embeddings(), lm.get_output_embeddings())


def cast_frozen(model: torch.nn.Module, dtype: Any) -> int:
    """Cast parameters without ``requires_grad`` (and the floating buffers of modules whose
    own parameters are all frozen) to ``dtype``; returns the number of parameters cast.
    Parameter-free modules keep their buffers (rotary frequencies, fixed positions)."""
    from scalar.model.llm import resolve_dtype

    dtype = resolve_dtype(dtype)
    n = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        for p in params:
            if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
                n += 1
        if params and all(not p.requires_grad for p in params):  # e.g. BatchNorm statistics
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None and buf.is_floating_point():
                    setattr(module, name, buf.to(dtype))
    return n


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
