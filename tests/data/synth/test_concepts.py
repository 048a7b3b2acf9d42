"""The concept-knowledge text of the realistic world (scalar/data/synth/concepts.py)."""

from __future__ import annotations

import builtins
import json
import pickle
import re
from pathlib import Path

import pytest

from scalar.data.__main__ import main
from scalar.data.prepare import ensure_tokenizer
from scalar.data.synth import build_synthetic
from scalar.data.synth.concepts import (
    KNOWLEDGE,
    concept_sentences,
    plural,
    read_concepts,
    split_sentences,
    write_concepts,
)
from scalar.data.synth.taxonomy import CATEGORIES, CATEGORY_BY_NAME, HELD_OUT

SMALL = dict(n_train=6, n_val=2, n_test=2, n_heldout=6, n_unlabeled=2)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())


def _strings(value, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, out)


def _record_strings(root: Path) -> set[str]:
    """Every string of every annotation file of a build (COCO, LVIS, refs, VG, queries)."""
    out: set[str] = set()
    files = [p for p in root.rglob("*") if p.suffix in (".json", ".p")]
    assert files
    for p in files:
        data = pickle.loads(p.read_bytes()) if p.suffix == ".p" else json.loads(p.read_text())
        _strings(data, out)
    return out


def test_every_category_is_described_held_out_ones_included():
    items = concept_sentences(0)
    assert set(KNOWLEDGE) == set(CATEGORY_BY_NAME)
    for c in CATEGORIES:
        kinds = {k for k, cat, _ in items if cat == c.name}
        assert kinds == {"hypernym", "parts", "attributes", "comparison", "scene"}, c.name
    heart = [s for _, cat, s in items if cat == "heart"]
    assert "a heart is a kind of symbol." in heart
    assert "a heart has two rounded lobes at the top." in heart
    assert len({s for _, _, s in items}) == len(items)  # distinct sentences
    assert concept_sentences(0) == items and concept_sentences(1) != items  # seeded


def test_held_out_categories_use_the_words_of_seen_ones():
    items = concept_sentences(0)

    def templates(name: str) -> set[str]:
        return {s.replace(name, "X").replace("an X", "a X") for k, cat, s in items
                if cat == name and k == "hypernym" or cat == name and " can be " in s}  # fmt: skip

    for name in HELD_OUT:
        sup = CATEGORY_BY_NAME[name].supercategory
        seen = [c.name for c in CATEGORIES if c.supercategory == sup and c.name not in HELD_OUT]
        assert seen, name
        assert templates(name) == templates(seen[0]), name
    seen_words = {w for k, cat, s in items if cat not in HELD_OUT for w in _norm(s).split()}
    for name in HELD_OUT:  # every word about it but its name and hand-written parts and uses
        words = {w for k, cat, s in items if cat == name and k != "parts" and " seen on " not in s
                 for w in _norm(s).split()}  # fmt: skip
        assert words - seen_words <= {name, plural(name)}, name


def test_heldout_text_split_is_disjoint_and_spread():
    items = concept_sentences(0)
    train, held = split_sentences(items, 0.1, seed=0)
    assert not set(train) & set(held)
    assert sorted(train + held) == sorted(s for _, _, s in items)
    assert 0.08 * len(items) <= len(held) <= 0.12 * len(items)
    assert {cat for _, cat, s in items if s in set(held)} >= set(CATEGORY_BY_NAME)
    assert split_sentences(items, 0.1, seed=0) == (train, held)
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_sentences(items, 1.0)


def test_written_without_reading_any_file(tmp_path, monkeypatch):
    want = concept_sentences(3)

    def refuse(*args, **kwargs):
        raise AssertionError(f"the concept text read a file: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert concept_sentences(3) == want


def test_no_sentence_comes_from_a_build_s_records(tmp_path):
    """Checked against every string of a small realistic build's annotation files (the
    held-out split's boxes, referring expressions, descriptions, attributes)."""
    root = tmp_path / "world"
    build_synthetic(root, workers=1, seed=1, difficulty="default", **SMALL)
    records = _record_strings(root)
    assert any(name in " ".join(records) for name in HELD_OUT)  # held-out objects are there
    out = tmp_path / "concepts"
    write_concepts(out, seed=0)
    text = read_concepts(out, "train") + read_concepts(out, "heldout")
    assert not {_norm(s) for s in text} & {_norm(r) for r in records if _norm(r)}
    assert not [s for s in text if re.search(r"\d", s)]  # no coordinates, ids or counts
    long_records = {_norm(r) for r in records if len(_norm(r).split()) >= 4}
    corpus = "\n".join(_norm(s) for s in text)
    assert not [r for r in long_records if r in corpus]  # no expression copied in


def test_cli_writes_the_corpus(tmp_path, capsys):
    assert main(["concepts", f"out={tmp_path / 'c'}"]) == 0
    record = json.loads((tmp_path / "c" / "concepts.json").read_text())
    assert record["counts"]["train"] == len(read_concepts(tmp_path / "c", "train"))
    assert record["held_out_categories"] == list(HELD_OUT)
    assert "concept text in" in capsys.readouterr().out
    assert main(["concepts"]) == 2
    assert "concepts needs out=<dir>" in capsys.readouterr().err


def test_tokenizer_trained_with_the_concept_text_covers_it(tmp_path):
    text = concept_sentences(0)
    train = [s for _, _, s in text]
    ensure_tokenizer(tmp_path / "plain", lambda: [], 600, log=lambda *_: None)
    ensure_tokenizer(tmp_path / "with", lambda: [], 600, log=lambda *_: None, extra_texts=train)
    from scalar.core.tokenizer import load_tokenizer

    def tokens_per_word(path: Path) -> float:
        tok = load_tokenizer(path)
        n = sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in train)
        return n / sum(len(s.split()) for s in train)

    assert tokens_per_word(tmp_path / "with") < 0.7 * tokens_per_word(tmp_path / "plain")
    tok = load_tokenizer(tmp_path / "with")
    assert len(tok(" hexagon", add_special_tokens=False)["input_ids"]) == 1
