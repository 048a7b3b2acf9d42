"""The tasks on hand-built scenes: exact prompts, targets and boxes."""

import math
import re

import pytest

from scalar.core.boxes import parse_box_text
from scalar.data.scene import ImageInfo, Object, RefExpr, Region, Relation, Scene
from scalar.data.tasks import PROMPTS, TaskBuilder
from scalar.data.tasks_spatial import SPATIAL_PROMPTS

W, H = 200, 100
A_BOX, B_BOX, C_BOX = (
    (10.0, 10.0, 30.0, 30.0),
    (100.0, 20.0, 140.0, 60.0),
    (150.0, 50.0, 190.0, 90.0),
)


def make_scene(order=(0, 1, 2)) -> Scene:
    a = Object(1, "square", A_BOX, supercategory="polygon", attributes=["red", "small"],
               mask=[[10, 10, 30, 10, 30, 30, 10, 30]])  # fmt: skip
    b = Object(2, "star", B_BOX, supercategory="symbol", attributes=["blue"])
    c = Object(3, "square", C_BOX, supercategory="polygon", attributes=["large", "red"])
    objs = [a, b, c]
    scene = Scene(
        image=ImageInfo(5, "/nowhere/5.png", W, H),
        objects=[objs[i] for i in order],
        relations=[Relation(1, "left of", 2)],
        regions=[Region(500, B_BOX, "a blue star"), Region(501, B_BOX, "the star in the middle")],
        refs=[RefExpr(70, 1, ["the small red square", "leftmost square"], "train")],
        split="train",
    )
    scene.meta["sent_kinds"] = {70: ["attribute", "ordinal"]}
    return scene


def test_rec_continuous_and_meta():
    out = TaskBuilder({"rec": 1.0}).build(make_scene())
    assert [(s.prompt, s.target) for s in out] == [
        ("where is the small red square?", "<box>"),
        ("where is leftmost square?", "<box>"),
    ]
    for s, kind in zip(out, ["attribute", "ordinal"]):
        assert s.task == "rec" and s.target_boxes == [A_BOX] and s.regions == []
        m = s.meta
        assert (m["object_id"], m["category"], m["ref_id"], m["split"]) == (
            1,
            "square",
            70,
            "train",
        )
        assert m["sent_kind"] == kind and m["held_out"] is False
        assert [c.level for c in m["concepts"]][2] == "category"
    held = TaskBuilder({"rec": 1.0}, held_out_categories={"square"}).build(make_scene())
    assert all(s.meta["held_out"] for s in held)


def test_rec_textual_round_trip():
    out = TaskBuilder({"rec": 1.0}, box_format="textual").build(make_scene())
    # 10/200*999 = 49.95, 10/100*999 = 99.9, 30/200*999 = 149.85, 30/100*999 = 299.7
    assert out[0].target == "[50,100,150,300]"
    assert out[0].meta["box_format"] == "textual"
    (box01,) = parse_box_text(out[0].target)
    back = (box01[0] * W, box01[1] * H, box01[2] * W, box01[3] * H)
    assert all(abs(p - q) <= max(W, H) / 999 for p, q in zip(back, A_BOX))


def test_mixed_format_fraction_and_determinism():
    def formats(frac, seed=0):
        b = TaskBuilder(
            {"chain": 1, "rec": 1}, box_format="mixed", mixed_textual_fraction=frac, seed=seed
        )
        return [s.meta["box_format"] for s in b.build(make_scene())]

    assert set(formats(0.0)) == {"continuous"} and set(formats(1.0)) == {"textual"}
    runs = [formats(0.5, seed) for seed in range(6)]
    assert {f for r in runs for f in r} == {"continuous", "textual"}
    assert formats(0.5, 3) == formats(0.5, 3)
    for s in TaskBuilder({"rec": 1}, box_format="mixed", seed=1).build(make_scene()):
        assert (s.target == "<box>") == (s.meta["box_format"] == "continuous")


def test_roc_prompt_kinds():
    out = TaskBuilder({"roc": 1.0}).build(make_scene())
    got = [(s.meta["object_id"], s.meta["prompt_kind"], s.target) for s in out]
    assert got == [(1, "box", "square"), (1, "point", "square"), (1, "mask", "square"),
                   (2, "box", "star"), (2, "point", "star"),  # no mask: no mask prompt
                   (3, "box", "square"), (3, "point", "square")]  # fmt: skip
    assert all(s.prompt == "what is <region>?" == PROMPTS["roc"] for s in out)
    point = out[1].regions[0]
    assert (
        point.kind == "point"
        and point.point == (20.0, 20.0)
        and point.box == (20.0, 20.0, 20.0, 20.0)
    )
    assert out[2].regions[0].mask == [[10, 10, 30, 10, 30, 30, 10, 30]]
    only_box = TaskBuilder({"roc": 1.0}, prompt_kinds=("box",)).build(make_scene())
    assert [s.regions[0].kind for s in only_box] == ["box"] * 3


def test_caption_regions_and_refs():
    out = TaskBuilder({"caption": 1.0}).build(make_scene())
    assert len(out) == 2
    region, ref = out
    assert (region.prompt, region.target) == ("describe <region>.", "a blue star")
    assert region.regions[0].box == B_BOX
    assert region.meta["references"] == ["a blue star", "the star in the middle"]
    assert ref.regions[0].box == A_BOX and ref.meta["object_id"] == 1
    assert ref.meta["references"] == ["the small red square", "leftmost square"]
    assert ref.target in ref.meta["references"]


def _center(b):
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def _left(a, b):  # independent of the implementation: centre beyond the other's edge
    return _center(a)[0] < b[0] and a[2] < _center(b)[0]


def _above(a, b):
    return _center(a)[1] < b[1] and a[3] < _center(b)[1]


def test_spatial_answers_match_geometry():
    names = {"small square": A_BOX, "star": B_BOX, "large square": C_BOX}
    area = {k: (b[2] - b[0]) * (b[3] - b[1]) for k, b in names.items()}
    dist = lambda p, q: math.dist(_center(names[p]), _center(names[q]))  # noqa: E731
    patterns = {k: re.compile("^" + re.escape(v).replace(r"\{a\}", "(?P<a>.+)").replace(
        r"\{b\}", "(?P<b>.+)").replace(r"\{c\}", "(?P<c>.+)").replace(r"\{things\}", "(?P<t>.+)") + "$")
        for k, v in SPATIAL_PROMPTS.items()}  # fmt: skip
    out = TaskBuilder({"spatial_qa": 1.0}).build(make_scene())
    seen = set()
    for s in out:
        q = s.meta["question_type"]
        m = patterns[q].match(s.prompt)
        assert m, s.prompt
        g = m.groupdict()
        a, b = g.get("a"), g.get("b")
        seen.add((q, a, b))
        if q in ("left", "right", "above", "below"):
            rel = _left if q in ("left", "right") else _above
            pa, pb = (names[a], names[b]) if q in ("left", "above") else (names[b], names[a])
            assert s.target == ("yes" if rel(pa, pb) else "no"), s.prompt
            assert rel(names[a], names[b]) or rel(names[b], names[a])  # never borderline
            assert s.meta["answer_type"] == "qualitative"
        elif q in ("bigger", "smaller"):
            big = a if area[a] > area[b] else b
            small = b if big == a else a
            assert s.target == f"the {big if q == 'bigger' else small}"
            assert max(area[a], area[b]) >= 1.5 * min(area[a], area[b])
        elif q == "closer":
            assert s.target == f"the {a if dist(a, g['c']) < dist(b, g['c']) else b}"
        elif q == "distance":
            assert s.target == f"{round(dist(a, b))} pixels" and s.meta["value"] == round(
                dist(a, b)
            )
            assert s.meta["answer_type"] == "quantitative"
        elif q in ("width", "height"):
            bx = names[a]
            v = round(bx[2] - bx[0]) if q == "width" else round(bx[3] - bx[1])
            assert s.target == f"{v} pixels"
        else:
            assert s.target == {"squares": "2", "stars": "1"}[g["t"]]
    # every ordered pair was asked about (3 named objects, 6 pairs <= max_pairs)
    assert {(a, b) for q, a, b in seen if q == "distance"} == {
        (p, q) for p in names for q in names if p != q
    }
    # the small square is left of the star and above the large square: both asked
    assert any(q in ("left", "right") and {a, b} == {"small square", "star"} for q, a, b in seen)
    assert any(
        q in ("above", "below") and {a, b} == {"small square", "large square"} for q, a, b in seen
    )
    # equal areas (star, large square): never asked which is bigger
    assert not any(
        q in ("bigger", "smaller") and {a, b} == {"star", "large square"} for q, a, b in seen
    )
    assert {s.target for s in out if s.meta["question_type"] == "count"} == {"2", "1"}


def test_grounded_reading_order():
    scene = make_scene(order=(2, 0, 1))  # listed C, A, B
    (s,) = TaskBuilder({"grounded": 1.0}).build(scene)
    assert s.prompt == "describe the image with boxes."
    assert s.target == "a small red square <box>, a blue star <box>, a large red square <box>"
    assert s.target_boxes == [A_BOX, B_BOX, C_BOX] and s.meta["object_ids"] == [1, 2, 3]
    # equal centre x: top before bottom
    scene.objects.append(Object(4, "heart", (100.0, 70.0, 140.0, 90.0)))
    (s,) = TaskBuilder({"grounded": 1.0}, box_format="textual").build(scene)
    assert s.meta["object_ids"] == [1, 2, 4, 3]
    # the text holds each true box as integers round(v / size * 999), in reading order
    ints = [[round(v / d * 999) for v, d in zip(b, (W, H, W, H))] for b in s.target_boxes]
    written = re.findall(r"\[(\d+),(\d+),(\d+),(\d+)\]", s.target.replace(" ", ""))
    assert [[int(v) for v in box] for box in written] == ints
    parsed = parse_box_text(s.target)
    assert len(parsed) == len(ints)
    flat = [v for box in parsed for v in box]
    assert flat == pytest.approx([v / 999 for box in ints for v in box], abs=1e-12)


def test_chain_task_grounds_only_unique_texts():
    out = TaskBuilder({"chain": 1.0}).build(make_scene())
    got = {(s.prompt, s.meta["object_id"], s.meta["level"]) for s in out}
    assert got == {
        ("where is the small red square?", 1, "attributes"),
        ("where is the small red square left of the star?", 1, "relations"),
        ("where is the symbol?", 2, "supercategory"),
        ("where is the star?", 2, "category"),
        ("where is the blue star?", 2, "attributes"),
        ("where is the large red square?", 3, "attributes"),
    }  # "the square" and "the polygon" name two objects: not asked
    boxes = {1: A_BOX, 2: B_BOX, 3: C_BOX}
    assert all(s.target_boxes == [boxes[s.meta["object_id"]]] and s.target == "<box>" for s in out)


def test_builder_validation_and_determinism():
    with pytest.raises(ValueError, match="unknown task"):
        TaskBuilder({"vqa": 1.0})
    with pytest.raises(ValueError, match="box_format"):
        TaskBuilder({"rec": 1.0}, box_format="polar")
    all_tasks = {t: 1.0 for t in ("rec", "roc", "caption", "spatial_qa", "grounded", "chain")}
    one = TaskBuilder(all_tasks, box_format="mixed", level_dropout=0.3, seed=4).build(make_scene())
    two = TaskBuilder(all_tasks, box_format="mixed", level_dropout=0.3, seed=4).build(make_scene())
    assert [(s.task, s.prompt, s.target) for s in one] == [
        (s.task, s.prompt, s.target) for s in two
    ]
    assert {s.task for s in one} == set(all_tasks)
    assert TaskBuilder({"rec": 0.0, "roc": 1.0}).tasks == ["roc"]  # zero weight: not built
