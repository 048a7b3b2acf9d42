"""The tiny model's tokenizer, trained offline on corpus text.

Loading a tokenizer from a local directory (any family) is
:func:`scalar.core.tokenizer.load_tokenizer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from scalar.core import tokens as T


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
