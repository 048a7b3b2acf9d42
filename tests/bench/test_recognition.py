"""bench/recognition.py: object crops of a split, the tower's training, zero-shot accuracy."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from scalar.data.chains import article
from tests.paths import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_recognition", ROOT / "bench/recognition.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def parts(make_cfg):
    cfg = make_cfg()
    dm = instantiate(cfg.data)
    corpora = dm.read_corpora()
    names = sorted({o.category for s in corpora["train"].scenes for o in s.objects})
    model = instantiate(cfg.model)
    vis = cfg.model.vision
    return corpora, names, model, (int(vis.image_size), list(vis.mean), list(vis.std))


def test_split_boxes_are_the_scene_boxes_over_the_image_size(bench, parts):
    corpora, names, _, (size, mean, std) = parts
    scenes = corpora["train"].scenes
    images, boxes, labels = bench.load_split(scenes, names, size, mean, std)
    assert images.shape == (len(scenes), 3, size, size)
    first = scenes[0]
    w, h = first.image.width, first.image.height
    for o, b, y in zip(first.objects, boxes[0].tolist(), labels[0].tolist()):
        x1, y1, x2, y2 = o.box
        assert b == pytest.approx([x1 / w, y1 / h, x2 / w, y2 / h])
        assert names[y] == o.category


def test_the_tower_learns_the_training_objects(bench, parts):
    corpora, names, model, (size, mean, std) = parts
    train = bench.load_split(corpora["train"].scenes, names, size, mean, std)
    got = bench.train_tower(model.vision, train, train, len(names), 4, 3e-3, 40, None, 0)
    assert got["steps"] == 40 and got["objects_seen"] > 40
    assert got["last_loss"] < got["first_loss"] - 0.3  # cross entropy falls on 20 images
    assert got["val_accuracy"] > 1 / len(names)  # above chance on what it trained on


def test_zero_shot_equals_a_direct_computation_from_the_models_parts(bench, parts):
    corpora, names, model, (size, mean, std) = parts
    model.eval()
    val = bench.load_split(corpora["train"].scenes[:3], names, size, mean, std)
    got = bench.zero_shot(model, val, names)
    # by hand: the region encoder's pooled box feature through region_proj, against the
    # mean input embedding of "a <name>" through concept_proj (tiny's concept_encoder=embed)
    images, boxes, labels = val
    tok = model.tokenizer
    with torch.no_grad():
        text = torch.stack([
            model.embed_tokens(torch.tensor(tok(article(n), add_special_tokens=False)["input_ids"])).mean(0)
            for n in names
        ])  # fmt: skip
        concepts = F.normalize(model.concept_proj(text), dim=-1)
        patches, grid = model.encode_images(images)
        idx = torch.cat([torch.full((len(b),), i) for i, b in enumerate(boxes)])
        kinds = torch.zeros(len(idx), dtype=torch.long)
        pooled = model.region(patches, grid, torch.cat(boxes), kinds, idx)["pooled"]
        regions = F.normalize(model.region_proj(pooled), dim=-1)
    pred = (regions @ concepts.T).argmax(1)
    expected = float((pred == torch.cat(labels)).float().mean())
    assert got == pytest.approx(expected)
