"""Tiny random-init checkpoints of real LLM families, saved as a user would bring them.

``make_family(name, out_dir)`` writes a Hugging Face directory (``config.json``, weights,
``tokenizer.json`` + ``tokenizer_config.json``) holding a 2-layer random-init model of the
family and a real fast BPE tokenizer trained offline with ``tokenizers`` on the words of
the synthetic corpus, in the family's own special-token layout:

- ``llama`` (LLaMA / Vicuna): Metaspace (SentencePiece-style) BPE, ``<unk>`` ``<s>``
  ``</s>`` at ids 0-2, no pad token.
- ``qwen2``: byte-level BPE, ``<|endoftext|>`` is eos and pad, no bos; the embedding has
  spare rows beyond the tokenizer (as the real Qwen2 checkpoints do).
- ``opt``: byte-level BPE, ``<s>`` ``<pad>`` ``</s>`` ``<unk>``; bos = eos = ``</s>``.
- ``gpt2``: byte-level BPE, ``<|endoftext|>`` is bos, eos and unk; no pad token.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

FAMILIES = ("llama", "qwen2", "opt", "gpt2")
WIDTH, LAYERS, HEADS, POSITIONS = 64, 2, 4, 512


def corpus_texts() -> list[str]:
    """Sentences with the words, digits and punctuation of the synthetic corpus tasks."""
    from scalar.data.synth.relations import PREDICATES
    from scalar.data.synth.shapes import COLOURS, SHAPES, SIZES, TEXTURES
    from scalar.data.tasks_spatial import SPATIAL_PROMPTS

    words = [*COLOURS, *(s.name for s in SHAPES), *(s.supercategory for s in SHAPES)]
    words += [*SIZES, *TEXTURES, *PREDICATES]
    texts = [" ".join(words), "where is the object? what is it? describe the image with boxes."]
    texts += list(SPATIAL_PROMPTS.values())
    texts += [f"the {c} {s.name} is {p} the {s.supercategory} thing" for c in COLOURS
              for s in SHAPES for p in PREDICATES[:2]]  # fmt: skip
    texts += ["[12,340,560,999] [0,7,89,105] yes no one two three four five 0.5 1.25 metres"]
    return texts * 2


def _train(model, pre_tokenizer, decoder, special: list[str], vocab: int, alphabet, norm=None):
    from tokenizers import Tokenizer, trainers

    tok = Tokenizer(model)
    if norm is not None:
        tok.normalizer = norm
    tok.pre_tokenizer, tok.decoder = pre_tokenizer, decoder
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=special, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(corpus_texts(), trainer=trainer)
    return tok


def build_tokenizer(family: str, vocab: int = 400):
    """The family's fast tokenizer (a ``PreTrainedTokenizerFast``) and its class name."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_alpha = pre_tokenizers.ByteLevel.alphabet()
    if family == "llama":
        meta = dict(replacement="\u2581", prepend_scheme="first", split=True)
        alphabet = [c for c in string.printable if not c.isspace()] + ["\u2581"]
        tok = _train(models.BPE(unk_token="<unk>"), pre_tokenizers.Metaspace(**meta),
                     decoders.Metaspace(**meta), ["<unk>", "<s>", "</s>"], vocab, alphabet)  # fmt: skip
        roles = dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>")
        return PreTrainedTokenizerFast(tokenizer_object=tok, **roles), "LlamaTokenizer"
    byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if family == "qwen2":
        special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = _train(models.BPE(), byte, decoders.ByteLevel(), special, vocab, byte_alpha,
                     normalizers.NFC())  # fmt: skip
        roles = dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>")
        extra = ["<|im_start|>", "<|im_end|>"]
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, additional_special_tokens=extra, **roles
        )
        return fast, "Qwen2Tokenizer"
    if family == "opt":
        tok = _train(models.BPE(), byte, decoders.ByteLevel(),
                     ["<s>", "<pad>", "</s>", "<unk>"], vocab, byte_alpha)  # fmt: skip
        roles = dict(bos_token="</s>", eos_token="</s>", unk_token="</s>", pad_token="<pad>")
        return PreTrainedTokenizerFast(tokenizer_object=tok, **roles), "GPT2Tokenizer"
    if family == "gpt2":
        tok = _train(models.BPE(), byte, decoders.ByteLevel(), ["<|endoftext|>"], vocab, byte_alpha)
        end = "<|endoftext|>"
        roles = dict(bos_token=end, eos_token=end, unk_token=end)
        return PreTrainedTokenizerFast(tokenizer_object=tok, **roles), "GPT2Tokenizer"
    raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")


def build_model(family: str, tok, seed: int = 0):
    """A random-init 2-layer causal LM of the family sized to the tokenizer."""
    import transformers as tf

    ids = {k: getattr(tok, f"{k}_token_id") for k in ("bos", "eos", "pad")}
    ids = {f"{k}_token_id": v for k, v in ids.items() if v is not None}
    v = len(tok)
    if family == "llama":
        cfg = tf.LlamaConfig(
            vocab_size=v, hidden_size=WIDTH, intermediate_size=2 * WIDTH,
            num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
            max_position_embeddings=POSITIONS, tie_word_embeddings=False, **ids,
        )  # fmt: skip
        cls = tf.LlamaForCausalLM
    elif family == "qwen2":
        cfg = tf.Qwen2Config(
            vocab_size=v + 16, hidden_size=WIDTH, intermediate_size=2 * WIDTH,
            num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=2,
            max_position_embeddings=POSITIONS, tie_word_embeddings=True, **ids,
        )  # fmt: skip
        cls = tf.Qwen2ForCausalLM
    elif family == "opt":
        cfg = tf.OPTConfig(
            vocab_size=v, hidden_size=WIDTH, ffn_dim=2 * WIDTH, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, max_position_embeddings=POSITIONS,
            word_embed_proj_dim=WIDTH, **ids,
        )  # fmt: skip
        cls = tf.OPTForCausalLM
    elif family == "gpt2":
        cfg = tf.GPT2Config(
            vocab_size=v, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS, **ids
        )
        cls = tf.GPT2LMHeadModel
    else:
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
    torch.manual_seed(seed)
    return cls(cfg)


def make_family(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write the family's tiny model and tokenizer to ``out_dir`` (``save_pretrained``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok, cls_name = build_tokenizer(family)
    build_model(family, tok, seed).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    cfg_file = out / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["tokenizer_class"] = cls_name  # as the real checkpoints name it
    cfg_file.write_text(json.dumps(cfg, indent=2))
    return out


_BUILT: dict[str, Path] = {}


def family_dir(tmp_path_factory, family: str) -> Path:
    """The family's directory, written once per test session."""
    if family not in _BUILT:
        _BUILT[family] = make_family(family, tmp_path_factory.mktemp(f"llm_{family}"))
    return _BUILT[family]
