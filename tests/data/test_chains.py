"""Concept chains on hand-built scenes: exact texts and boxes per level, dropout, matching."""

import random

import pytest

from scalar.data.chains import (
    LEVELS,
    article,
    build_chain,
    chain_text,
    definite,
    is_unique,
    mark_grounding,
    plural,
    refers_to,
    unique_phrase,
)
from scalar.data.scene import ImageInfo, Object, RefExpr, Relation, Scene

W, H = 200, 100


def make_scene() -> Scene:
    a = Object(1, "square", (10.0, 10.0, 30.0, 30.0), supercategory="polygon",
               attributes=["red", "small"])  # fmt: skip
    b = Object(2, "star", (100.0, 20.0, 140.0, 60.0), synset="star.n.01")
    c = Object(3, "square", (150.0, 50.0, 190.0, 90.0), supercategory="polygon",
               attributes=["large", "red"])  # fmt: skip
    d = Object(4, "puppy", (60.0, 60.0, 80.0, 90.0), synset="dog.n.01", attributes=["brown"])
    return Scene(
        image=ImageInfo(7, "/nowhere/7.png", W, H),
        objects=[a, b, c, d],
        relations=[Relation(1, "left of", 2), Relation(3, "right of", 2)],
        refs=[RefExpr(70, 1, ["the small red square on the left", "tiny red one"], "train")],
    )


def test_full_chain_texts_and_boxes():
    scene = make_scene()
    a = scene.objects[0]
    chain = build_chain(scene, a)
    assert [c.level for c in chain] == list(LEVELS)
    assert [c.text for c in chain] == [
        "2 squares, a puppy and a star",
        "a polygon",
        "a square",
        "small red square",  # size before colour
        "small red square left of the star",  # the landmark by its shortest unique name
        "the small red square on the left",  # first sentence without an rng
    ]
    assert chain[0].box == (0.0, 0.0, float(W), float(H))
    assert all(c.box == a.box for c in chain[1:])
    assert chain_text(chain) == (
        "scene: 2 squares, a puppy and a star; a polygon; a square; small red square; "
        "small red square left of the star; the small red square on the left"
    )


def test_missing_levels_are_skipped():
    scene = make_scene()
    star, puppy = scene.objects[1], scene.objects[3]
    # no supercategory and a synset head equal to the category; no attributes, relation, ref
    assert [(c.level, c.text) for c in build_chain(scene, star)] == [
        ("scene", "2 squares, a puppy and a star"),
        ("category", "a star"),
    ]
    # the synset head stands in for the missing supercategory when it differs
    assert [(c.level, c.text) for c in build_chain(scene, puppy)][1:] == [
        ("supercategory", "a dog"),
        ("category", "a puppy"),
        ("attributes", "brown puppy"),
    ]


def test_level_dropout_keeps_category_and_is_seeded():
    scene = make_scene()
    a = scene.objects[0]
    assert [c.level for c in build_chain(scene, a, random.Random(0), 1.0)] == ["category"]
    kept_sets = set()
    for seed in range(30):
        chain = build_chain(scene, a, random.Random(seed), level_dropout=0.5)
        levels = [c.level for c in chain]
        assert "category" in levels
        assert levels == [c.level for c in build_chain(scene, a, random.Random(seed), 0.5)]
        kept_sets.add(tuple(levels))
    assert ("category",) in kept_sets or len(kept_sets) > 5  # levels really vary
    assert any(len(k) < len(LEVELS) for k in kept_sets)
    assert any(len(k) >= 4 for k in kept_sets)
    with pytest.raises(ValueError, match="rng"):
        build_chain(scene, a, None, level_dropout=0.5)


def test_rng_picks_sentences_from_the_refs():
    scene = make_scene()
    seen = {build_chain(scene, scene.objects[0], random.Random(s))[-1].text for s in range(20)}
    assert seen == {"the small red square on the left", "tiny red one"}


def test_refers_to_uses_phrase_semantics():
    scene = make_scene()
    a, b, c, d = scene.objects
    ca = {x.level: x for x in build_chain(scene, a)}
    cc = {x.level: x for x in build_chain(scene, c)}
    assert not is_unique(scene, ca["category"])  # two squares
    assert not is_unique(scene, ca["supercategory"])  # two polygons
    assert is_unique(scene, ca["attributes"]) and is_unique(scene, cc["attributes"])
    assert is_unique(scene, ca["relations"])
    assert refers_to(scene, ca["category"], c) and not refers_to(scene, ca["category"], b)
    # "red square" (a subset of both squares' attributes) describes both squares
    scene.objects.append(Object(5, "square", (40.0, 40.0, 50.0, 50.0), attributes=["red"]))
    red = {x.level: x for x in build_chain(scene, scene.objects[-1])}["attributes"]
    assert red.text == "red square"
    assert [o.id for o in scene.objects if refers_to(scene, red, o)] == [1, 3, 5]
    assert not is_unique(scene, red)


def test_unique_phrase_and_words():
    scene = make_scene()
    a, b, c, d = scene.objects
    assert unique_phrase(scene, a) == "small square"
    assert unique_phrase(scene, b) == "star"
    assert unique_phrase(scene, c) == "large square"
    twin = Object(9, "square", (0.0, 0.0, 5.0, 5.0), attributes=["red", "small"])
    scene.objects.append(twin)
    assert unique_phrase(scene, a) is None  # a and its twin look the same
    assert article("ellipse") == "an ellipse" and article("star") == "a star"
    assert [plural(w) for w in ("box", "fly", "traffic light", "bus", "toy")] == [
        "boxes", "flies", "traffic lights", "buses", "toys"
    ]  # fmt: skip
    assert definite("a red square") == "the red square"
    assert definite("left red one") == "the left red one"


def test_mark_grounding_flags_levels_that_name_one_object():
    scene = make_scene()
    a, c = scene.objects[0], scene.objects[2]
    chain_a = mark_grounding(scene, build_chain(scene, a))
    # scene: never; "a polygon" / "a square": two squares; "small red square": only a;
    # "... left of the star": only a; the referring expression: always
    assert [x.grounds for x in chain_a] == [False, False, False, True, True, True]
    chain_c = mark_grounding(scene, build_chain(scene, c))
    assert [(x.level, x.grounds) for x in chain_c] == [
        ("scene", False), ("supercategory", False), ("category", False),
        ("attributes", True), ("relations", True),
    ]  # fmt: skip
    star = mark_grounding(scene, build_chain(scene, scene.objects[1]))
    assert [(x.text, x.grounds) for x in star if x.level == "category"] == [("a star", True)]
    assert not any(x.grounds for x in build_chain(scene, a))  # unmarked chains ground nothing
