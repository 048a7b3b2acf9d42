"""Loading a tokenizer from a local directory, with our special tokens.

Every tokenizer we hand to the model is a ``transformers.PreTrainedTokenizerFast`` that
knows the special tokens of :mod:`scalar.core.tokens` (added when missing). The tiny
model's own tokenizer is trained by :func:`scalar.data.tokenizer.train_tokenizer`.
"""

from __future__ import annotations

from pathlib import Path

from scalar.core import tokens as T


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
