"""Tokenizers: trained offline on corpus text (tiny model) or loaded from a local directory.

Every tokenizer we hand to the model is a ``transformers.PreTrainedTokenizerFast`` that
knows the special tokens of :mod:`scalar.tokens` (added when missing).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from scalar import tokens as T


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1024):
    """Train a byte-level BPE on ``texts`` and save it to ``out_dir``; returns the tokenizer.

    Digits are split one per token so that textual coordinates ("[12,340,...]") share
    a small, dense vocabulary.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=T.UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # special tokens swallow the spaces around them, so "a <box> b" has no lone-space tokens
        special_tokens=[AddedToken(t, lstrip=True, rstrip=True) for t in T.SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=T.PAD,
        bos_token=T.BOS,
        eos_token=T.EOS,
        unk_token=T.UNK,
        additional_special_tokens=[T.REGION, T.BOX, T.POINT, T.SEP],
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast


def load_tokenizer(path: str | Path):
    """Load a tokenizer from a local directory and make sure our special tokens exist.

    The family's own roles are kept (bos may be missing, as in Qwen2; bos, eos and unk may
    be one token, as in GPT-2). ``<region>``, ``<box>``, ``<point>`` and ``<sep>`` are
    added as special tokens that absorb the spaces around them (``lstrip``/``rstrip``), so
    ``"<region> <region>"`` is two ids in every family; a missing eos gets ``</s>`` and a
    missing pad reuses eos (padding is masked everywhere, so no new embedding row is
    needed). Never downloads: a missing directory is one clear error naming it.
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"tokenizer directory not found: {path} (build the corpus with "
            "`python -m scalar.data synth` or set model.tokenizer_path)"
        )
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
    if not getattr(tok, "is_fast", False):
        raise ValueError(
            f"{path}: no fast tokenizer (tokenizer.json); convert it with transformers"
        )
    vocab = tok.get_vocab()

    def special(token: str):
        return AddedToken(token, lstrip=True, rstrip=True, normalized=False, special=True)

    if tok.eos_token is None:
        tok.add_special_tokens({"eos_token": special(T.EOS)})
    extra = [special(t) for t in T.SCALAR_TOKENS if t not in vocab]
    if extra:
        tok.add_tokens(extra, special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
