"""Open-world RL without shortcuts: the leak-free contract and ``data=folder`` runs.

The RL stage reads the unlabeled pool's images (and its weak text, when given) and the
training split's category names; nothing of the pool's annotations, no held-out name.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scalar.data.scene import ImageInfo
from scalar.rl.consistency_rollout import ConsistencyRollout
from scalar.rl.grounding import to_px
from scalar.rl.model_proposals import word_groundings, word_query
from scalar.train.run import build
from tests.conftest import ROOT, TINY, compose_train
from tests.paths import SYNTHETIC
from tests.rl.conftest import RL_FAST, tiny_overrides

ROLES = "rl.prompts.roles=[describe,format,gdg,ground]"


def _copy_without_pool_text(tiny_corpus: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(tiny_corpus, data)
    (data / SYNTHETIC / "unlabeled" / "captions.json").unlink()  # the pool's only annotation file
    return data


def test_rl_stage_is_leak_free(tiny_corpus, align_ckpt, tmp_path, monkeypatch):
    data = _copy_without_pool_text(tiny_corpus, tmp_path)
    cfg = compose_train([
        *tiny_overrides(data, tmp_path / "logs", tmp_path / "run"), *RL_FAST, ROLES,
        "rl.prompts.batch_size=1", "rl.prompts.budgets.ground_tokens=4", f"init_from={align_ckpt}",
        "trainer.max_steps=2", "trainer.limit_val_batches=0",
        "callbacks.model_checkpoint.monitor=null", "data.corpora.unlabeled.captions=null",
    ])  # fmt: skip
    seen: list = []
    real = ConsistencyRollout.prompts

    def spy(self, model, items, device=None):
        samples, images = real(self, model, items, device)
        # the boxes the policy of this step grounds every known word to
        ground = word_groundings(model, self.collator, items, sorted(self.names), device)
        own = [[to_px(b, it["size"]) for _, b, _ in g] for it, g in zip(items, ground)]
        seen.append(([dict(it) for it in items], samples, own))
        return samples, images

    monkeypatch.setattr(ConsistencyRollout, "prompts", spy)
    parts = build(cfg)
    dm, module = parts["datamodule"], parts["module"]
    parts["trainer"].fit(module, datamodule=dm)
    assert parts["trainer"].global_step == 2 and len(seen) == 2
    corpora = dm.read_corpora()
    train_names = sorted({o.category for s in corpora["train"].scenes for o in s.objects})
    held = {o.category for s in corpora["heldout"].scenes for o in s.objects}
    held -= set(train_names)
    assert held  # the tiny corpus has held-out categories...
    assert module.prompts.words == train_names  # ...and the vocabulary is the training split's
    pool = {s.image.id for s in corpora["unlabeled"].scenes}
    assert all(not s.objects and not s.refs and not s.meta for s in corpora["unlabeled"].scenes)
    for items, samples, own in seen:
        assert all(it["scene"].image.id in pool and not it["captions"] for it in items)
        words = {w for s in samples for w in s.prompt.replace("?", " ").split()}
        assert not words & held  # no held-out category reaches a prompt
        # every region prompt is a box the model itself grounded a known word to
        for s in samples:
            if s.meta["role"] in ("describe", "format"):
                box = s.regions[0].box
                mine = own[s.meta["item"]]
                if s.regions[0].kind == "point":
                    mine = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) * 2 for b in mine]
                assert any(torch.allclose(torch.tensor(box), torch.tensor(b), atol=1e-3)
                           for b in mine), (s.prompt, box)  # fmt: skip
            if s.meta["role"] == "ground":
                assert s.meta["query"] in {word_query(w) for w in train_names}


def test_folder_of_images_with_a_vocabulary_trains_with_no_skipped_steps(
    tiny_corpus, align_ckpt, tmp_path
):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    pngs = sorted((tiny_corpus / SYNTHETIC / "images").glob("*.png"))[:3]
    for k, p in enumerate(pngs):
        shutil.copy(p, images / ("sub" if k else "") / p.name)
    vocab = tmp_path / "words.txt"
    vocab.write_text("# shapes I care about\ncircle\nHeart\n\nstar\n")
    cmd = [
        sys.executable, str(ROOT / "train.py"), "stage=rl", f"init_from={align_ckpt}",
        "data=folder", f"data.root={images}", f"rl.vocabulary={vocab}",
        *[o for o in TINY if not o.startswith(("data=", "data.splits"))],
        f"paths.data_dir={tiny_corpus}", f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.output_dir={tmp_path / 'run'}", *RL_FAST, "rl.prompts.batch_size=2",
        "rl.prompts.budgets.ground_tokens=4", "trainer.max_steps=3", "data.loader.num_workers=0",
        "stage.monitor=train/loss", "stage.monitor_mode=min",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "step skipped" not in log, log[-3000:]
    metrics = (tmp_path / "run/csv").rglob("metrics.csv")
    rows = [line for m in metrics for line in m.read_text().splitlines()[1:]]
    header = next((tmp_path / "run/csv").rglob("metrics.csv")).read_text().splitlines()[0]
    col = header.split(",").index("train/loss")
    losses = [r.split(",")[col] for r in rows if r.split(",")[col]]
    assert len(losses) == 3  # one loss per step: none skipped


def test_no_vocabulary_is_a_clear_error(tmp_path):
    from scalar.rl.vocabulary import stage_vocabulary

    with pytest.raises(ValueError, match="rl.vocabulary names no file"):
        stage_vocabulary({"unlabeled": object()}, "train", None)
    assert ImageInfo  # (the image record type the prompts carry)
