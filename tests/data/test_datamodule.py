"""SceneDataModule on a small synthetic corpus built by its own prepare step (Hydra config)."""

import json
import pickle
from collections import Counter

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from scalar.core import tokens as T
from scalar.data.__main__ import compose
from scalar.data.resume import ResumableLoader

SIZES = {"n_train": 24, "n_val": 6, "n_test": 6, "n_heldout": 6, "n_unlabeled": 3}
KEYS = {
    "images", "image_index", "image_sizes", "input_ids", "attention_mask", "labels", "prompt_input_ids",
    "prompt_attention_mask", "region_boxes", "region_kinds", "region_masks", "region_batch",
    "target_boxes", "target_batch", "concept_ids", "concept_levels", "concept_boxes",
    "concept_batch", "concept_ground", "concept_input_ids", "concept_attention_mask", "samples", "skipped",
    "object_boxes", "object_batch", "scene_known",
}  # fmt: skip


def make_dm(root, *extra):
    overrides = [f"data.root={root}", "data.loader.batch_size=8", "data.splits.max_samples.val=30"]
    overrides += [f"data.synthetic.{k}={v}" for k, v in SIZES.items()] + [
        "data.synthetic.image_size=64"
    ]
    return instantiate(compose(["data=synthetic", *overrides, *extra]).data)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    dm = make_dm(root)
    dm.setup("fit")
    return root, dm


def _key(batch):
    return [(s.task, s.prompt, s.target) for s in batch["samples"]]


def test_setup_builds_corpus_tokenizer_and_samples(built):
    root, dm = built
    manifest = json.loads((root / "manifest.json").read_text())
    assert (root / "tokenizer" / "tokenizer.json").is_file()
    for split in ("train", "val", "test", "heldout"):
        counts = dm.corpora[split].counts()
        want = manifest["counts"][split]
        assert (counts["images"], counts["refs"], counts["sentences"]) == (
            want["images"], want["refs"], want["sentences"]
        )  # fmt: skip
        assert dm.samples[split], split
    assert dm.corpora["unlabeled"].counts()["images"] == SIZES["n_unlabeled"]
    assert dm.samples["unlabeled"] == [] and not dm.skips
    assert len(dm.samples["val"]) == 30  # capped
    # held-out categories: flagged only where they occur, and never in training
    held = set(manifest["held_out_categories"])
    assert held and not any(s.meta.get("held_out") for s in dm.samples["train"])
    flagged = {s.meta["category"] for s in dm.samples["heldout"] if s.meta.get("held_out")}
    assert flagged and flagged <= held
    # sentence kinds from the refs pickle reach the rec samples
    with open(root / "refcoco" / "synthetic" / "refs(unc).p", "rb") as f:
        refs = pickle.load(f)
    want = Counter(k for r in refs if r["split"] == "train" for k in r["sent_kinds"])
    got = Counter(s.meta["sent_kind"] for s in dm.samples["train"] if s.task == "rec")
    assert got == want


def test_batches_follow_the_contract(built):
    _, dm = built
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == KEYS
    b = len(batch["samples"])
    # groups of 4 prompts of one image (data.loader.group_size): each image is sent once
    ids = [s.image.id for s in batch["samples"]]
    assert b == 8 and ids[:4] == ids[:1] * 4 and ids[4:] == ids[4:5] * 4
    assert batch["images"].shape == (len(set(ids)), 3, 64, 64)
    index = batch["image_index"].tolist()
    for r in range(b):  # rows share an image row exactly when they show the same image
        assert all((index[r] == index[q]) == (ids[r] == ids[q]) for q in range(b))
    assert (
        batch["input_ids"].dtype == torch.long and batch["labels"].shape == batch["input_ids"].shape
    )
    tok = dm.tokenizer
    region = tok.convert_tokens_to_ids(T.REGION)
    triggers = torch.tensor([tok.convert_tokens_to_ids(t) for t in (T.BOX, T.POINT)])
    assert int((batch["input_ids"] == region).sum()) == 4 * batch["region_boxes"].shape[0]
    assert int(torch.isin(batch["labels"], triggers).sum()) == batch["target_boxes"].shape[0]
    assert batch["region_masks"].shape[1:] == (16, 16)
    assert ((batch["target_boxes"] >= 0) & (batch["target_boxes"] <= 1)).all()
    c = batch["concept_ids"].shape[0]
    assert batch["concept_input_ids"].shape[0] == c == batch["concept_boxes"].shape[0] > 0
    assert int(batch["concept_batch"].max()) < b
    # every training row lists all objects of its scene (the objectness targets)
    assert batch["scene_known"].all()
    per_row = torch.bincount(batch["object_batch"], minlength=b).tolist()
    assert per_row == [len(s.meta["scene_boxes"]) for s in batch["samples"]] and min(per_row) > 0
    val = dm.val_dataloader()
    assert isinstance(val, list) and len(val) == 2
    assert dm.eval_split_names("val") == ["val", "heldout"]
    # evaluation batches also list the dataset index of each row and the samples left
    # out for an unreadable image (none here), as eval.py's do
    assert set(next(iter(val[1]))) == KEYS | {"indices", "skipped_samples"}


def test_order_is_deterministic_and_seeded(built):
    root, dm = built
    first = [_key(b) for _, b in zip(range(3), dm.train_dataloader())]
    other = make_dm(root)
    other.setup()
    assert [_key(b) for _, b in zip(range(3), other.train_dataloader())] == first
    reseeded = make_dm(root, "data.seed=1")
    reseeded.setup()
    assert [_key(b) for _, b in zip(range(3), reseeded.train_dataloader())] != first


def test_sampler_state_resumes_exactly(built):
    assert isinstance(built[1].train_dataloader(), ResumableLoader)  # one loader for all stages
    root, _ = built
    a = make_dm(root)
    a.setup()
    it = iter(a.train_dataloader())
    for _ in range(5):
        a.on_before_batch_transfer(next(it), 0)  # what Lightning does for each training batch
    state = a.state_dict()
    assert state["sampler"]["position"] == 40 and state["sampler"]["epoch"] == 0
    expected = [_key(next(it)) for _ in range(2)]
    b = make_dm(root)
    b.load_state_dict(state)  # before setup, as Lightning restores a checkpoint
    b.setup()
    got = [_key(x) for _, x in zip(range(2), b.train_dataloader())]
    assert got == expected


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(_key(batch))
        return (self.w * batch["images"].mean()).sum() + (self.w**2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SaveAt(L.Callback):
    """Saves a checkpoint in the middle of an epoch, as step-based checkpointing does."""

    def __init__(self, step, path):
        self.step, self.path, self.position = step, path, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            self.position = trainer.datamodule.sampler.position
            trainer.save_checkpoint(self.path)


def _trainer(steps, callbacks=()):
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0,
                     callbacks=list(callbacks))  # fmt: skip


def test_lightning_fit_checkpoint_and_resume(built, tmp_path):
    root, _ = built
    straight, saver = Recorder(), SaveAt(3, tmp_path / "mid.ckpt")
    dm = make_dm(root)
    _trainer(5, [saver]).fit(straight, datamodule=dm)
    assert saver.position == 24 and dm.sampler.position == 40  # 3 and 5 batches of 8
    ckpt = torch.load(tmp_path / "mid.ckpt", weights_only=False)
    assert ckpt["SceneDataModule"]["sampler"] == {"seed": 0, "epoch": 0, "position": 24}
    resumed = Recorder()
    _trainer(5).fit(resumed, datamodule=make_dm(root), ckpt_path=tmp_path / "mid.ckpt")
    assert len(straight.seen) == 5 and resumed.seen == straight.seen[3:5]


# -- corpus merging and split selection (what the configs' reader lists do) -------------------


def _corpus(name, scenes):
    from scalar.data.scene import Corpus

    return Corpus(name, scenes)


def test_merge_corpora_joins_by_image_and_object_id():
    from scalar.data.merge import merge_corpora
    from scalar.data.scene import ImageInfo, Object, RefExpr, Region, Relation, Scene

    def scene(iid, objs, **kw):
        return Scene(ImageInfo(iid, f"/x/{iid}.png", 10, 10), objs, **kw)

    base = _corpus(
        "base", [scene(1, [Object(1, "cat", (0, 0, 5, 5)), Object(2, "dog", (5, 5, 9, 9))])]
    )
    other = _corpus("vg", [
        scene(1, [Object(1, "cat", (0, 0, 5, 5), attributes=["black"], synset="cat.n.01"),
                  Object(3, "hat", (1, 1, 2, 2))],
              relations=[Relation(1, "near", 2), Relation(1, "wears", 3)],
              regions=[Region(7, (0, 0, 5, 5), "a black cat")],
              refs=[RefExpr(8, 2, ["the dog"], "train"), RefExpr(9, 3, ["a hat"], "train")]),
        scene(2, [Object(4, "cow", (0, 0, 1, 1))]),
    ])  # fmt: skip
    merged = merge_corpora(base, other)
    (s,) = merged.scenes
    assert s.objects[0].attributes == ["black"] and s.objects[0].synset == "cat.n.01"
    assert [(r.subject, r.predicate, r.object) for r in s.relations] == [(1, "near", 2)]
    assert [r.text for r in s.regions] == ["a black cat"] and [r.ref_id for r in s.refs] == [8]
    # unknown object 3: as an object, a relation endpoint and a ref target
    assert merged.skips.as_dict() == {"merge_image_not_in_base": 1, "merge_unknown_object": 3}
    assert base.scenes[0].relations == [] and base.scenes[0].objects[0].attributes == []


def test_select_split_by_file_and_by_hash(tmp_path):
    from scalar.data.merge import clear_cache, hash_split, select_split
    from scalar.data.scene import ImageInfo, Scene, Skips

    calls = []

    def reader():
        calls.append(1)
        c = _corpus("c", [Scene(ImageInfo(i, f"/x/{i}", 4, 4)) for i in range(40)])
        c.skips = Skips()
        c.skips.add("degenerate_box", "row 3")
        return c

    (tmp_path / "splits.json").write_text(
        json.dumps({str(i): "val" if i < 5 else "train" for i in range(38)})
    )
    val = select_split(reader, "val", tmp_path / "splits.json")
    train = select_split(reader, "train", tmp_path / "splits.json")
    assert [s.image.id for s in val.scenes] == [0, 1, 2, 3, 4] and len(train.scenes) == 33
    assert len(calls) == 1  # read once for both splits
    # the reader's skips and the unlisted images (38, 39) are reported once, with the first split
    assert val.skips.as_dict() == {"degenerate_box": 1, "image_not_in_splits_file": 2}
    assert train.skips.as_dict() == {}
    clear_cache()
    parts = {
        sp: {s.image.id for s in select_split(reader, sp).scenes} for sp in ("train", "val", "test")
    }
    assert set().union(*parts.values()) == set(range(40)) and sum(map(len, parts.values())) == 40
    assert all(hash_split(i) == sp for sp, ids in parts.items() for i in ids)
    assert len(parts["train"]) > len(parts["val"])
    clear_cache()


def test_a_null_split_is_left_out(built):
    root, dm = built
    off = make_dm(root, "data.corpora.unlabeled=null", "~data.corpora.heldout")
    assert set(off.read_corpora()) == set(dm.corpora) - {"unlabeled", "heldout"}
    assert off.read_corpora()["train"].counts() == dm.corpora["train"].counts()
