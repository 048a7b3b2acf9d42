"""Image decoding, bad-image replacement, the task-mixture sampler and the collate."""

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from scalar.core import tokens as T
from scalar.core.batch import select_rows
from scalar.data.collate import IGNORE, Collator
from scalar.data.dataset import MixtureSampler, SampleDataset
from scalar.data.sample import Sample, VisualPrompt
from scalar.data.scene import ImageInfo, Object, RefExpr, Scene, Skips
from scalar.data.tasks import TaskBuilder
from scalar.data.tokenizer import train_tokenizer

W, H = 200, 100
A_BOX = (13.0, 7.0, 57.0, 61.0)
POLY = [[13, 7, 57, 7, 57, 61, 13, 61, 35, 30]]


def _sample(path, task="rec"):
    return Sample(task, ImageInfo(1, str(path), 20, 10), "where is it?", "<box>")


def test_solid_colour_decodes_to_normalised_colour(tmp_path):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    Image.new("RGB", (20, 10), (200, 100, 50)).save(tmp_path / "c.png")
    Image.new("L", (9, 31), 77).save(tmp_path / "g.png")  # grayscale becomes RGB
    ds = SampleDataset([_sample(tmp_path / "c.png"), _sample(tmp_path / "g.png")], 8, mean, std)
    for i, rgb in enumerate([(200, 100, 50), (77, 77, 77)]):
        x = ds[i]["image"]
        assert x.shape == (3, 8, 8)
        want = torch.tensor([(c / 255 - m) / s for c, m, s in zip(rgb, mean, std)])
        assert torch.allclose(x, want[:, None, None].expand(3, 8, 8), atol=1e-6)


def test_missing_and_corrupt_images_are_replaced_and_counted(tmp_path):
    Image.new("RGB", (20, 10), (1, 2, 3)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(np.random.default_rng(0).bytes(300))
    paths = [tmp_path / "nope.png", tmp_path / "bad.png", tmp_path / "good.png"]
    skips = Skips()
    ds = SampleDataset([_sample(p) for p in paths], 4, (0, 0, 0), (1, 1, 1), skips=skips)
    item = ds[0]
    assert item["index"] == 2 and item["sample"].image.path == str(paths[2])
    assert item["skipped"] == [("missing_image", str(paths[0])), ("corrupt_image", str(paths[1]))]
    assert skips.as_dict() == {"corrupt_image": 1, "missing_image": 1}
    assert str(paths[1]) in skips.examples["corrupt_image"]
    assert ds[1]["index"] == 2 and skips.as_dict() == {"corrupt_image": 1, "missing_image": 1}
    with pytest.raises(RuntimeError, match="loadable image"):
        SampleDataset([_sample(p) for p in paths[:2]], 4, (0, 0, 0), (1, 1, 1))[0]


def test_mixture_sampler_weights_determinism_and_resume():
    tasks = ["a"] * 50 + ["b"] * 10 + ["c"] * 5
    s = MixtureSampler(tasks, {"a": 1.0, "b": 3.0, "c": 0.0}, num_samples=4000, seed=3)
    order = list(s)
    frac_b = sum(tasks[i] == "b" for i in order) / len(order)
    assert abs(frac_b - 0.75) < 0.03 and not any(tasks[i] == "c" for i in order)
    # without replacement within a task until it is exhausted
    first_b = [i for i in order if tasks[i] == "b"][:10]
    assert sorted(first_b) == list(range(50, 60))
    again = MixtureSampler(tasks, {"a": 1.0, "b": 3.0}, num_samples=4000, seed=3)
    assert list(again) == order
    again.set_epoch(1)
    assert list(again) != order and list(again) == again.order(1)
    # resume: consume 1000, save, restore into a fresh sampler: the rest follows exactly
    s.consume(1000)
    fresh = MixtureSampler(tasks, {"a": 1.0, "b": 3.0}, num_samples=4000, seed=3)
    fresh.load_state_dict(s.state_dict())
    # len() is the whole epoch (Lightning adds the restored batches to what is left)
    assert len(fresh) == 4000 and list(fresh) == order[1000:]
    fresh.set_epoch(0)  # same epoch: position kept
    assert list(fresh) == order[1000:]
    fresh.consume(3000)  # epoch used up: the next iteration is epoch 1
    assert list(fresh) == s.order(1) and fresh.epoch == 1
    with pytest.raises(ValueError, match="no samples"):
        MixtureSampler(["a"], {"b": 1.0})


def test_mixture_sampler_shards_across_ranks():
    tasks = ["a"] * 7 + ["b"] * 4
    full = MixtureSampler(tasks, {"a": 1, "b": 1}, num_samples=11, seed=5).order(0)
    ranks = [MixtureSampler(tasks, {"a": 1, "b": 1}, 11, 5, num_replicas=2, rank=r) for r in (0, 1)]
    parts = [list(r) for r in ranks]
    assert [len(p) for p in parts] == [6, 6] and [len(r) for r in ranks] == [6, 6]
    padded = full + full[:1]  # 11 -> 12, wrapped like DistributedSampler does
    assert parts[0] == padded[0::2] and parts[1] == padded[1::2]
    for r in ranks:
        r.consume(2)  # two samples on each rank: four of the epoch's order are used
    assert ranks[0].state_dict()["position"] == 4
    rest = full[4:] + full[4:5]  # 7 left -> padded to 8 by wrapping the remainder
    assert list(ranks[1]) == rest[1::2]


def test_mixture_sampler_groups_prompts_of_one_image():
    # images 0..9; image i has i % 3 + 1 "a" samples and one "b" sample
    tasks, images = [], []
    for img in range(10):
        for _ in range(img % 3 + 1):
            tasks.append("a")
            images.append(img)
        tasks.append("b")
        images.append(img)
    weights = {"a": 1.0, "b": 1.0}
    s = MixtureSampler(tasks, weights, num_samples=402, seed=1, group_size=4, images=images)
    order = s.order(0)
    assert len(order) == 404 and len(s) == 404  # rounded up to whole groups
    groups = [order[j : j + 4] for j in range(0, len(order), 4)]
    for g in groups:
        assert len({images[i] for i in g}) == 1  # one image per group
        n_img = sum(1 for im in images if im == images[g[0]])
        # no repeats unless the image has fewer samples than the group
        assert len(set(g)) == min(4, n_img)
    # leads follow the task weights; companions are drawn by weight among the image's tasks
    frac_b = sum(tasks[g[0]] == "b" for g in groups) / len(groups)
    assert 0.35 < frac_b < 0.65
    again = MixtureSampler(tasks, weights, num_samples=402, seed=1, group_size=4, images=images)
    assert again.order(0) == order  # deterministic
    # ranks take whole groups, alternately
    ranks = [
        MixtureSampler(tasks, weights, 402, 1, 2, r, group_size=4, images=images) for r in (0, 1)
    ]
    padded = groups + groups[:1]  # 101 groups -> 102, wrapped
    assert list(ranks[0]) == [i for g in padded[0::2] for i in g]
    assert list(ranks[1]) == [i for g in padded[1::2] for i in g]
    # resume after a batch of 8 on each rank: the rest is the same groups
    for r in ranks:
        r.consume(8)
    assert list(ranks[1]) == [i for g in (groups[4:] + groups[4:5])[1::2] for i in g]
    with pytest.raises(ValueError, match="image key"):
        MixtureSampler(tasks, weights, group_size=2)


# -- collate ---------------------------------------------------------------------------------


def _scene() -> Scene:
    a = Object(1, "square", A_BOX, supercategory="polygon", attributes=["red"], mask=POLY)
    b = Object(2, "star", (120.0, 20.0, 160.0, 60.0), attributes=["blue"])
    return Scene(
        ImageInfo(5, "/x/5.png", W, H), [a, b], refs=[RefExpr(9, 1, ["the red square"], "val")]
    )


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = []
    for fmt in ("continuous", "textual"):
        for s in TaskBuilder({"rec": 1, "roc": 1, "chain": 1}, box_format=fmt).build(_scene()):
            texts += [s.prompt, s.target] + [c.text for c in s.meta["concepts"]]
    texts += ["is it left of ? yes no"] * 3
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=300)


def _items():
    scene = _scene()
    roc = TaskBuilder({"roc": 1}).build(scene)  # box, point, mask for the square
    rec = TaskBuilder({"rec": 1}).build(scene)[0]
    rec_txt = TaskBuilder({"rec": 1}, box_format="textual").build(scene)[0]
    two = Sample("roc", scene.image, "is <region> left of <region>?", "yes",
                 [VisualPrompt("box", (120.0, 20.0, 160.0, 60.0)), roc[1].regions[0]])  # fmt: skip
    samples = [roc[0], rec, rec_txt, two, roc[2]]
    return [{"sample": s, "image": torch.full((3, 4, 4), float(i)), "skipped": []}
            for i, s in enumerate(samples)]  # fmt: skip


def test_collate_labels_and_regions(tokenizer):
    k, m = 3, 16
    col = Collator(tokenizer, region_tokens=k, mask_size=m)
    items = _items()
    batch = col(items)
    ids = tokenizer.convert_tokens_to_ids
    region, sep, bos, eos, pad = (ids(t) for t in (T.REGION, T.SEP, T.BOS, T.EOS, T.PAD))
    for b, it in enumerate(items):
        s = it["sample"]
        row, lab, att = batch["input_ids"][b], batch["labels"][b], batch["attention_mask"][b]
        n = int(att.sum())
        assert row[0] == bos and row[n - 1] == eos and (row[n:] == pad).all()
        answer = lab[lab != IGNORE].tolist()
        assert answer[-1] == eos
        assert tokenizer.decode(answer[:-1]).strip() == s.target
        first = int((lab != IGNORE).nonzero()[0])
        assert row[first - 1] == sep and (lab[:first] == IGNORE).all()  # prompt is masked
        r = (row[:n] == region).int().tolist()
        assert sum(r) == k * len(s.regions)
        runs = "".join(map(str, r)).split("0")  # each prompt: one run of k <region> tokens
        assert sorted(len(x) for x in runs if x) == [k] * len(s.regions)
    assert batch["region_boxes"].shape[0] * k == int((batch["input_ids"] == region).sum())
    assert batch["region_batch"].tolist() == [0, 3, 3, 4]
    assert batch["region_kinds"].tolist() == [0, 0, 1, 2]
    # every item is of the scene's one image file: it is sent once, indexed by each row
    assert batch["images"].shape[0] == 1 and batch["image_index"].tolist() == [0] * 5
    assert batch["image_sizes"].tolist() == [[W, H]] * 5


def test_collate_sends_each_image_once(tokenizer):
    items = _items()[:4]
    for it, path in zip(items, ["/x/a.png", "/x/b.png", "/x/a.png", "/x/c.png"]):
        s = it["sample"]
        it["sample"] = Sample(s.task, ImageInfo(s.image.id, path, W, H), s.prompt, s.target,
                              s.regions, s.target_boxes, s.meta)  # fmt: skip
    batch = Collator(tokenizer)(items)
    assert batch["image_index"].tolist() == [0, 1, 0, 2]
    assert batch["images"][:, 0, 0, 0].tolist() == [0.0, 1.0, 3.0]  # first item of each file
    # concept items of one image are sent once (rows 0 and 2 share the square's chain)
    keys = [(int(batch["image_index"][r]), int(i)) for r, i in
            zip(batch["concept_batch"], batch["concept_ids"])]  # fmt: skip
    assert len(keys) == len(set(keys)) and (batch["concept_batch"] == 2).sum() == 0


def test_collate_masks_boxes_and_padding(tokenizer):
    m = 16
    batch = Collator(tokenizer, region_tokens=2, mask_size=m)(_items())
    masks = batch["region_masks"]
    frac = (A_BOX[2] - A_BOX[0]) / W * (A_BOX[3] - A_BOX[1]) / H
    assert abs(float(masks[0].sum()) - frac * m * m) <= 1  # box prompt
    assert torch.allclose(batch["region_boxes"][0], torch.tensor([13 / W, 7 / H, 57 / W, 61 / H]))
    # point prompt (box centre 35, 34): a small binary disc containing the point's cell
    pt = masks[2]
    assert set(pt.unique().tolist()) <= {0.0, 1.0} and 1 <= pt.sum() <= 9
    assert pt[int(34 / H * m), int(35 / W * m)] == 1
    # mask prompt: polygon area (pycocotools) as a fraction of the grid, +-1 cell
    rle = mask_utils.merge(mask_utils.frPyObjects(POLY, H, W))
    assert abs(float(masks[3].sum()) - mask_utils.area(rle) / (W * H) * m * m) <= 1
    # only the continuous rec sample has a trigger: one target box, normalised exactly
    assert torch.equal(batch["target_boxes"], torch.tensor([[13 / W, 7 / H, 57 / W, 61 / H]]))
    assert batch["target_batch"].tolist() == [1]
    # left padding of the prompt: ends with <sep>, equals the head of input_ids
    sep, pad = (tokenizer.convert_tokens_to_ids(t) for t in (T.SEP, T.PAD))
    p, pm = batch["prompt_input_ids"], batch["prompt_attention_mask"]
    assert (p[:, -1] == sep).all() and (pm[:, -1] == 1).all()
    for b in range(p.shape[0]):
        n = int(pm[b].sum())
        assert (pm[b, : p.shape[1] - n] == 0).all() and (p[b, : p.shape[1] - n] == pad).all()
        assert torch.equal(p[b, p.shape[1] - n :], batch["input_ids"][b, :n])
    assert int(pm.sum(1).min()) < p.shape[1]  # some row is actually padded


def test_collate_concepts(tokenizer):
    batch = Collator(tokenizer)(_items())
    rows, ids, levels = batch["concept_batch"], batch["concept_ids"], batch["concept_levels"]
    texts = [tokenizer.decode(r[a.bool()]).strip() for r, a in
             zip(batch["concept_input_ids"], batch["concept_attention_mask"])]  # fmt: skip
    assert len(texts) == len(ids) == len(levels) == batch["concept_boxes"].shape[0]
    # equal texts <-> equal ids
    for i in range(len(texts)):
        for j in range(len(texts)):
            assert (ids[i] == ids[j]) == (texts[i] == texts[j])
    # row 0 (the square's roc) carries its chain: scene, supercategory, category, attributes, refexp
    assert levels[rows == 0].tolist() == [0, 1, 2, 3, 5]
    assert [t for t, r in zip(texts, rows) if r == 0][1:] == [
        "a polygon",
        "a square",
        "red square",
        "the red square",
    ]
    assert not batch["concept_ground"].any()  # chains not marked (ground_concepts off)
    marked = TaskBuilder({"roc": 1}, ground_concepts=True).build(_scene())[0]
    ground = Collator(tokenizer)([{"sample": marked, "image": torch.zeros(3, 4, 4)}])
    # the square is the scene's only polygon, square and red square: all but scene ground
    assert ground["concept_ground"].tolist() == [False, True, True, True, True]
    scene_box = batch["concept_boxes"][(rows == 0) & (levels == 0)][0]
    assert scene_box.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert (rows == 3).sum() == 0  # the hand-made sample has no concepts


def test_collate_errors_name_the_sample(tokenizer):
    items = _items()
    with pytest.raises(ValueError, match="rec sample of image 5"):
        Collator(tokenizer, max_length=6)([items[1]])
    bad = Sample("roc", items[0]["sample"].image, "what is <region>?", "x", [])
    with pytest.raises(ValueError, match="1 <region> placeholders but 0"):
        Collator(tokenizer)([{"sample": bad, "image": torch.zeros(3, 4, 4)}])


def test_collate_lists_each_images_objects_once(tokenizer):
    """Every TaskBuilder sample carries its scene's boxes; each such row holds them, and a
    hand-made sample without them is not known."""
    items = _items()  # rows 0, 1, 2, 4 come from the scene; row 3 is hand-made
    for it, path in zip(items, ["/x/a.png", "/x/b.png", "/x/a.png", "/x/c.png", "/x/c.png"]):
        s = it["sample"]
        it["sample"] = Sample(s.task, ImageInfo(s.image.id, path, W, H), s.prompt, s.target,
                              s.regions, s.target_boxes, s.meta)  # fmt: skip
    batch = Collator(tokenizer)(items)
    assert batch["scene_known"].tolist() == [True, True, True, False, True]
    assert batch["object_batch"].tolist() == [0, 0, 1, 1, 2, 2, 4, 4]
    square = [13 / W, 7 / H, 57 / W, 61 / H]
    star = [120 / W, 20 / H, 160 / W, 60 / H]
    assert torch.allclose(batch["object_boxes"], torch.tensor([square, star] * 4))
    sub = select_rows(batch, [2, 3])  # row 2 keeps its image's objects, renumbered
    assert sub["object_batch"].tolist() == [0, 0] and sub["scene_known"].tolist() == [True, False]
