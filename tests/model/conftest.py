"""Fixtures for the model tests: an in-process tokenizer, tiny models and a contract batch."""

from __future__ import annotations

import pytest
import torch

from scalar.core import tokens as T

SENTENCES = [
    "where is the red circle ?",
    "what is this ? a blue square",
    "is the green triangle left of the small star ? yes",
    "the big yellow circle is above the red square [120,340,560,780]",
    "describe the region . a small purple star right of a circle [0,999,5,7]",
    "how many shapes are there ? three shapes",
] * 4

IMAGE_SIZES = [[640, 480], [320, 240], [500, 375]]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    from scalar.data.tokenizer import train_tokenizer

    return train_tokenizer(SENTENCES, tmp_path_factory.mktemp("tok"), vocab_size=300)


def tiny_parts(llm_config=None, **over):
    """Keyword arguments of build_model for a very small model (fast tests)."""
    cfg = dict(
        vision=dict(name="scalar-tiny", image_size=64, freeze=False, feature_layer=2),
        bridge=dict(num_queries=4, dim=32, num_layers=1, num_heads=2, mlp_ratio=2.0),
        llm=dict(
            config=llm_config
            or dict(
                model_type="llama",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                max_position_embeddings=128,
            ),
            freeze=False,
        ),
        region=dict(grid_pool=2),
        spatial=dict(dim=32, num_layers=1, num_heads=2),
        region_tokens=2,
        contrastive_dim=16,
    )
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def make_model(tokenizer):
    from scalar.model.build import build_model

    def make(seed: int = 0, llm_config=None, **over):
        torch.manual_seed(seed)
        return build_model(tokenizer=tokenizer, **tiny_parts(llm_config=llm_config, **over))

    return make


@pytest.fixture
def model(make_model):
    return make_model()


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _disc(m, cx, cy, r):
    ys, xs = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    return (((xs + 0.5) / m - cx) ** 2 + ((ys + 0.5) / m - cy) ** 2 <= r * r).float()


def build_batch(tok, k: int, image_size: int = 64, m: int = 16, seed: int = 0) -> dict:
    """Three rows following the BATCH CONTRACT: REC, a box prompt, point + mask prompts."""
    reg = T.REGION * k
    rows = [
        (f"{T.BOS} where is the red circle ? {T.SEP}", f"{T.BOX}{T.EOS}"),
        (f"{T.BOS} what is {reg} ? {T.SEP}", f"a blue square{T.EOS}"),
        (
            f"{T.BOS} is {reg} left of {reg} ? {T.SEP}",
            f"yes {T.POINT} [120,340,560,780] {T.BOX}{T.EOS}",
        ),
    ]
    prompts = [_ids(tok, p) for p, _ in rows]
    answers = [_ids(tok, a) for _, a in rows]
    pad = tok.pad_token_id
    t_full = max(len(p) + len(a) for p, a in zip(prompts, answers))
    t_prompt = max(len(p) for p in prompts)
    input_ids = torch.full((3, t_full), pad)
    labels = torch.full((3, t_full), -100)
    attn = torch.zeros(3, t_full, dtype=torch.long)
    p_ids = torch.full((3, t_prompt), pad)
    p_mask = torch.zeros(3, t_prompt, dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        n = len(p) + len(a)
        input_ids[i, :n] = torch.tensor(p + a)
        labels[i, len(p) : n] = torch.tensor(a)
        attn[i, :n] = 1
        p_ids[i, t_prompt - len(p) :] = torch.tensor(p)
        p_mask[i, t_prompt - len(p) :] = 1
    box_mask = torch.zeros(m, m)
    box_mask[int(0.2 * m) : int(0.6 * m), int(0.1 * m) : int(0.5 * m)] = 1
    ell = _disc(m, 0.7, 0.4, 0.2)
    g = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randn(3, 3, image_size, image_size, generator=g),
        "image_sizes": torch.tensor(IMAGE_SIZES),
        "input_ids": input_ids,
        "attention_mask": attn,
        "labels": labels,
        "prompt_input_ids": p_ids,
        "prompt_attention_mask": p_mask,
        "region_boxes": torch.tensor(
            [[0.1, 0.2, 0.5, 0.6], [0.3, 0.4, 0.3, 0.4], [0.5, 0.2, 0.9, 0.6]]
        ),
        "region_kinds": torch.tensor([0, 1, 2]),
        "region_masks": torch.stack([box_mask, _disc(m, 0.3, 0.4, 0.06), ell]),
        "region_batch": torch.tensor([1, 2, 2]),
        "target_boxes": torch.tensor(
            [[0.35, 0.3, 0.65, 0.6], [0.3, 0.3, 0.3, 0.3], [0.12, 0.34, 0.56, 0.78]]
        ),
        "target_batch": torch.tensor([0, 2, 2]),
        "concept_ids": torch.tensor([0, 1, 0, 2]),
        "concept_levels": torch.tensor([2, 1, 2, 3]),
        "concept_boxes": torch.tensor(
            [[0.2, 0.1, 0.6, 0.5], [0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6]]
        ),
        "concept_batch": torch.tensor([0, 1, 2, 2]),
        "concept_ground": torch.tensor([True, False, True, True]),
        **_concept_text(tok, ["red circle", "square", "circle", "a small purple star"]),
    }


def _concept_text(tok, texts):
    ids = [_ids(tok, t) for t in texts]
    n = max(map(len, ids))
    out = torch.full((len(ids), n), tok.pad_token_id)
    mask = torch.zeros(len(ids), n, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return {"concept_input_ids": out, "concept_attention_mask": mask}


@pytest.fixture
def batch(tokenizer, model):
    return build_batch(tokenizer, model.region_tokens)


def force(schedule: dict[tuple[int, int], int]):
    """A logits processor forcing token ``t`` in row ``r`` at step ``s`` for ``{(r, s): t}``."""

    def proc(step, tokens, logits):
        logits = logits.clone()
        for (r, s), t in schedule.items():
            if s == step:
                logits[r] = float("-inf")
                logits[r, t] = 0.0
        return logits

    return proc
