"""The RL stage's words: training split's annotated categories + the user's file; caption phrases."""

from __future__ import annotations

import pytest

from scalar.data.scene import Category, Corpus, ImageInfo, Object, Scene
from scalar.rl.vocabulary import caption_phrases, read_vocabulary, stage_vocabulary


def _corpus(*cats: str, table: tuple[str, ...] = ()) -> Corpus:
    objs = [Object(k, c, (0, 0, 1, 1)) for k, c in enumerate(cats)]
    scene = Scene(image=ImageInfo("i", "i.png", 4, 4), objects=objs)
    return Corpus("c", [scene], categories=[Category(k, n) for k, n in enumerate(table)])


def test_vocabulary_file_is_read_in_order_without_repeats(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("# my words\nStar\n\n  traffic   light # a phrase\nstar\nkite\n")
    assert read_vocabulary(f) == ["star", "traffic light", "kite"]
    with pytest.raises(FileNotFoundError, match="rl.vocabulary: file not found"):
        read_vocabulary(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no words"):
        read_vocabulary(tmp_path / "empty.txt")


def test_stage_vocabulary_is_the_training_objects_plus_the_file(tmp_path):
    corpora = {
        "train": _corpus("square", "circle", "square", table=("circle", "square", "heart")),
        "heldout": _corpus("heart", "hexagon"),
        "unlabeled": _corpus("kite"),
    }
    # the category table lists "heart" but no training object is one: not a known word
    assert stage_vocabulary(corpora) == ["circle", "square"]
    f = tmp_path / "w.txt"
    f.write_text("heart\ncircle\n")
    assert stage_vocabulary(corpora, "train", f) == ["circle", "square", "heart"]
    assert stage_vocabulary({"unlabeled": _corpus()}, "train", f) == ["heart", "circle"]
    with pytest.raises(ValueError, match="no 'train' split"):
        stage_vocabulary({"unlabeled": _corpus()}, "train", None)


def test_caption_phrases_are_the_noun_chunks():
    assert caption_phrases("a picture of a red circle and a star") == ["red circle", "star"]
    assert caption_phrases("Photo of a heart, a blue square and an ellipse.") == [
        "heart", "blue square", "ellipse"]  # fmt: skip
    assert caption_phrases("there is a kite here") == ["kite"]
    assert caption_phrases("a cat on a background") == ["cat"]
    assert caption_phrases("a big shiny old red metal car and a star") == ["star"]  # > 4 words
    assert caption_phrases("") == []
