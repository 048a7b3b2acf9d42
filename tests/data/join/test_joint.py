"""The corpus join on hand-built cross-corpus cases (counts worked out by hand)."""

import pytest

from scalar.data import merge
from scalar.data.chains import LEVELS, build_chain, mark_grounding
from scalar.data.join.joint import read_joint
from scalar.data.join.match import iou_matrix, match_objects
from scalar.data.join.wordnet import WordNet
from scalar.data.scene import Corpus, ImageInfo, Object, RefExpr, Region, Relation, Scene
from tests.data.join.miniwordnet import write_mini_wordnet


@pytest.fixture(autouse=True)
def _fresh_cache():
    merge.clear_cache()
    yield
    merge.clear_cache()


def scene(image_id, w, h, objects, coco_id=None, **kw) -> Scene:
    meta = {} if coco_id is None else {"coco_id": coco_id}
    return Scene(ImageInfo(image_id, f"/x/{image_id}.jpg", w, h), objects, meta=meta, **kw)


def reader(name, scenes):
    corpus = Corpus(name, scenes)
    return lambda: corpus


def test_iou_matrix_by_hand():
    got = iou_matrix([(0, 0, 10, 10)], [(0, 0, 10, 10), (5, 0, 15, 10), (20, 20, 30, 30)])
    assert got.tolist() == [[1.0, 50 / 150, 0.0]]


def test_near_miss_boxes_and_thresholds():
    base = [Object(1, "dog", (0.0, 0.0, 100.0, 100.0))]
    near = [Object(9, "dog", (10.0, 0.0, 110.0, 100.0))]  # IoU 90/110 = 0.818
    assert match_objects(base, near, iou=0.5).pairs == [(0, 0, pytest.approx(90 / 110))]
    m = match_objects(base, near, iou=0.85)
    assert m.pairs == [] and m.unmatched_other == [0] and m.unmatched_base == [0]


def test_two_candidates_hungarian_beats_greedy():
    # X overlaps A (0.9) and B (0.6); Y overlaps only A (0.8): greedy takes X-A and loses Y,
    # the best one-to-one assignment is X-B + Y-A (1.4 > 0.9)
    a = Object("A", "box", (0.0, 0.0, 100.0, 100.0))
    b = Object("B", "box", (100.0, 0.0, 200.0, 100.0))
    x = Object("X", "box", (0.0, 0.0, 100.0, 90.0))  # IoU with A 0.9
    y = Object("Y", "box", (0.0, 0.0, 80.0, 100.0))  # IoU with A 0.8
    x2 = Object("X", "box", (100.0, 0.0, 200.0, 60.0))  # IoU with B 0.6
    assert iou_matrix([a.box], [x.box, y.box]).tolist() == [[pytest.approx(0.9), 0.8]]
    m = match_objects([a], [x, y])  # one object, two candidates: the better one wins
    assert [(i, j) for i, j, _ in m.pairs] == [(0, 0)] and m.unmatched_other == [1]
    m = match_objects([a, b], [x2, y])
    assert sorted((i, j) for i, j, _ in m.pairs) == [(0, 1), (1, 0)]


def test_name_conflict_is_counted_and_left_out():
    base = [Object(1, "car", (0.0, 0.0, 50.0, 50.0))]
    other = [Object(2, "tree", (0.0, 0.0, 50.0, 50.0)), Object(3, "cars", (0.0, 0.0, 50.0, 49.0))]
    m = match_objects(base, other)
    assert [(i, j) for i, j, _ in m.pairs] == [(0, 1)]  # plural "cars" is compatible
    assert m.conflicting == [0] and m.unmatched_other == []


def test_wordnet_makes_hyponyms_compatible(tmp_path):
    wn = WordNet(write_mini_wordnet(tmp_path / "wn"))
    person = Object(1, "person", (0.0, 0.0, 10.0, 10.0), synset="person.n.01")
    man = Object(2, "man", (0.0, 0.0, 10.0, 10.0), synset="man.n.01")
    assert match_objects([person], [man]).conflicting == [0]
    assert match_objects([person], [man], wordnet=wn).pairs == [(0, 0, 1.0)]


def _corpora():
    # COCO image 100 is 800x600; VG stores it at 400x300 (boxes and regions half size)
    person = Object(11, "person", (100.0, 100.0, 300.0, 500.0), supercategory="person")
    dog = Object(12, "dog", (400.0, 300.0, 600.0, 500.0), supercategory="animal")
    ref = scene(100, 800, 600, [person, dog],
                refs=[RefExpr(5, 12, ["the dog on the right"], "train")])  # fmt: skip
    coco = scene(100, 800, 600, [Object(11, "person", person.box), Object(12, "dog", dog.box)])
    lvis = scene(100, 800, 600, [Object(7, "dog", (402.0, 300.0, 600.0, 498.0),
                                        synset="dog.n.01")])  # fmt: skip
    vg_objs = [
        Object(31, "man", (50.0, 50.0, 150.0, 250.0), synset="man.n.01", attributes=["tall"]),
        Object(
            32,
            "dog",
            (200.0, 150.0, 300.0, 250.0),
            synset="dog.n.01",
            attributes=["brown", "small"],
        ),  # fmt: skip
        Object(33, "tree", (0.0, 0.0, 40.0, 100.0), synset="tree.n.01"),
        Object(34, "car", (200.0, 150.0, 300.0, 250.0), synset="car.n.01"),  # on the dog
    ]
    vg = scene(9, 400, 300, vg_objs, coco_id=100,
               relations=[Relation(31, "walking", 32), Relation(32, "near", 33),
                          Relation(34, "on", 31)],
               regions=[Region(1, (200.0, 150.0, 300.0, 250.0), "a small brown dog")])  # fmt: skip
    vg_alone = scene(10, 400, 300, [Object(40, "cat", (0.0, 0.0, 5.0, 5.0))])  # no coco_id
    return ref, coco, lvis, vg, vg_alone


def test_join_report_and_joined_scene(tmp_path, capsys):
    ref, coco, lvis, vg, vg_alone = _corpora()
    synsets = tmp_path / "coco_to_synset.json"  # LVIS's layout: name -> {synset}
    synsets.write_text('{"person": {"synset": "person.n.01"}, "dog": {"synset": "dog.n.01"}}')
    joint = read_joint(
        refcoco=reader("refcoco", [ref]), coco=reader("coco", [coco]),
        lvis=reader("lvis", [lvis]), vg=reader("vg", [vg, vg_alone]),
        wordnet_dir=write_mini_wordnet(tmp_path / "wn"), category_synsets=synsets,
    )  # fmt: skip
    rep = joint.meta["join"]
    assert {k: rep["refcoco~coco"][k] for k in ("matched", "unmatched_other", "conflicting")} == {
        "matched": 2, "unmatched_other": 0, "conflicting": 0}  # fmt: skip
    assert rep["refcoco~lvis"]["matched"] == 1 and rep["refcoco~lvis"]["unmatched_base"] == 1
    v = rep["refcoco~vg"]
    assert (v["matched"], v["unmatched_other"], v["conflicting"]) == (2, 1, 1)
    assert (v["relations_kept"], v["relations_dropped"]) == (2, 1)  # car->man: car left out
    assert joint.skips.as_dict()["join_no_coco_id"] == 1
    s = joint.scenes[0]
    by_id = s.object_by_id()
    assert by_id[12].attributes == ["brown", "small"] and by_id[12].synset == "dog.n.01"
    assert by_id[11].attributes == ["tall"]
    assert by_id["vg:33"].box == (0.0, 0.0, 80.0, 200.0)  # kept, brought to 800x600
    assert "vg:34" not in by_id
    assert [(r.subject, r.predicate, r.object) for r in s.relations] == [
        (11, "walking", 12), (12, "near", "vg:33")]  # fmt: skip
    assert s.regions[0].box == (400.0, 300.0, 600.0, 500.0)
    assert s.meta["hypernym_paths"][12][-3:] == ["animal", "canine", "dog"]
    assert by_id[12].supercategory == "canine"
    chain = mark_grounding(s, build_chain(s, by_id[12]))
    assert [c.level for c in chain] == list(LEVELS)
    assert [c.text for c in chain[1:]] == [
        "a canine", "a dog", "small brown dog", "small brown dog near the tree",
        "the dog on the right"]  # fmt: skip
    assert all(c.grounds for c in chain[1:])
    assert "no WordNet" not in capsys.readouterr().out


def test_without_wordnet_corpus_supercategories_and_one_message(capsys):
    ref, coco, lvis, vg, vg_alone = _corpora()
    for _ in range(2):
        joint = read_joint(refcoco=reader("refcoco", [ref]), vg=reader("vg", [vg, vg_alone]))
    out = capsys.readouterr().out
    assert out.count("no WordNet") <= 1
    s = joint.scenes[0]
    assert s.object_by_id()[12].supercategory == "animal"
    # without WordNet "man" and "person" conflict: man's relation is dropped
    assert joint.meta["join"]["refcoco~vg"]["conflicting"] == 2
    assert "hypernym_paths" not in s.meta


def test_a_base_corpus_is_required():
    with pytest.raises(ValueError, match="refcoco or a coco"):
        read_joint(vg=reader("vg", []))
