"""The offline tokenizer: special tokens, spaces around them, digits, round trips, and
extending a foreign HF tokenizer directory with our special tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalar.core import tokens as T
from scalar.core.tokenizer import load_tokenizer
from scalar.data.tokenizer import train_tokenizer

TEXTS = [
    f"{T.BOS} where is the red circle left of the blue square ? {T.SEP} {T.BOX} {T.EOS}",
    f"what is {T.REGION} ? {T.SEP} a small green triangle",
    "the box [12,340,999,5] holds a cat at [7,81]",
    f"describe {T.REGION} . {T.SEP} the large yellow star above the tiny square",
    "how many circles are there ? 3 . the distance is 120 pixels",
] * 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("tok")
    return out, train_tokenizer(TEXTS, out, vocab_size=320)


def test_special_tokens_are_single_ids(trained):
    out, tok = trained
    loaded = load_tokenizer(out)
    for t in (tok, loaded):
        ids = [t.convert_tokens_to_ids(s) for s in T.SPECIAL_TOKENS]
        assert len(set(ids)) == len(T.SPECIAL_TOKENS)
        assert t.unk_token_id not in ids[T.SPECIAL_TOKENS.index(T.UNK) + 1 :]
        for s, i in zip(T.SPECIAL_TOKENS, ids):
            assert t(s, add_special_tokens=False)["input_ids"] == [i]
            assert t(f"x {s} y", add_special_tokens=False)["input_ids"].count(i) == 1
    assert loaded.pad_token == T.PAD and loaded.eos_token == T.EOS
    assert loaded.get_vocab() == tok.get_vocab()


def test_spaces_around_special_tokens_are_absorbed(trained):
    _, tok = trained
    text = f"what is {T.REGION} {T.REGION} ? {T.SEP} a {T.BOX} and {T.POINT} ."
    pieces = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
    assert "Ġ" not in pieces, pieces
    assert pieces.count(T.REGION) == 2 and pieces.count(T.BOX) == 1
    # the spaces are absorbed, not encoded: no space at all gives the same ids
    tight = f"what is{T.REGION}{T.REGION}?{T.SEP}a{T.BOX}and{T.POINT}."
    assert tok(tight)["input_ids"] == tok(text)["input_ids"]


def test_digits_split_one_per_token(trained):
    _, tok = trained
    for number in ("12", "340", "999", "2024", "1000000"):
        pieces = tok.convert_ids_to_tokens(
            tok(f"[{number}]", add_special_tokens=False)["input_ids"]
        )
        digits = [p.lstrip("Ġ") for p in pieces if any(ch.isdigit() for ch in p)]
        assert digits == list(number), pieces


def test_decode_round_trip_of_textual_box(trained):
    out, tok = trained
    text = "the box [12,340,999,5] holds a cat"
    for t in (tok, load_tokenizer(out)):
        ids = t(text, add_special_tokens=False)["input_ids"]
        assert T.UNK not in t.convert_ids_to_tokens(ids)
        assert t.decode(ids).strip() == text
        digits = [p for p in t.convert_ids_to_tokens(ids) if p.lstrip("Ġ").isdigit()]
        assert "".join(digits) == "123409995"


def _foreign_tokenizer(out: Path) -> None:
    """An HF tokenizer directory (WordLevel, own special tokens) without any of ours."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "the", "cat", "is", "on", "mat", "a", "?", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.save_pretrained(str(out))


def _foreign_vocab(path: Path) -> dict:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path)).get_vocab()


def test_foreign_directory_gets_our_special_tokens(tmp_path):
    _foreign_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    vocab = tok.get_vocab()
    assert T.REGION not in _foreign_vocab(tmp_path)
    missing = [t for t in T.SCALAR_TOKENS if t not in vocab]
    assert missing == [], f"load_tokenizer left out {missing}"
    assert tok.eos_token == T.EOS  # the foreign tokenizer had none: ours is its eos
    assert tok.pad_token == "[PAD]" and tok.bos_token is None  # its own roles stay
    ids = {t: tok.convert_tokens_to_ids(t) for t in [*T.SCALAR_TOKENS, T.EOS]}
    assert len(set(ids.values())) == len(ids)
    assert tok.unk_token_id not in ids.values()
    text = f"the cat {T.REGION} is on {T.BOX} mat {T.SEP}"
    got = tok(text, add_special_tokens=False)["input_ids"]
    assert got.count(ids[T.REGION]) == 1 and got.count(ids[T.BOX]) == 1
    assert got.count(ids[T.SEP]) == 1
    assert tok.convert_tokens_to_ids("cat") == 3  # the original vocabulary is untouched


def test_missing_directory_names_it(tmp_path):
    missing = tmp_path / "no_tokenizer_here"
    with pytest.raises(FileNotFoundError, match="no_tokenizer_here"):
        load_tokenizer(missing)
