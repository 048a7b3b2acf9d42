"""The RL stage through the real Hydra config, starting from an align checkpoint."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger

from scalar.rl.sampling import Sampler
from scalar.train.checkpoint import load_checkpoint_file
from scalar.train.run import build, train
from tests.conftest import compose_train
from tests.rl.conftest import IMAGES_FAST, RL_FAST, tiny_overrides
from tests.scale.dist_job import StopAt


class FakeWandb(WandbLogger):
    """Records the tables it would send (no W&B run is started)."""

    def __init__(self):  # noqa: D107 - deliberately skips WandbLogger.__init__
        self.tables: list[dict] = []
        self._experiment, self._log_model, self._checkpoint_callback = None, False, None

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_table(self, key, columns=None, data=None, dataframe=None, step=None):
        self.tables.append({"key": key, "columns": columns, "data": data, "step": step})

    @property
    def save_dir(self):
        return None

    @property
    def version(self):
        return "fake-run"


def _cfg(tiny_corpus, tmp_path, *extra, images: bool = True):
    base = tiny_overrides(tiny_corpus, tmp_path / "logs", tmp_path / "run")
    return compose_train([*base, *RL_FAST, *(IMAGES_FAST if images else []), *extra])


@pytest.mark.parametrize("algo", ["scst", "grpo", "dpo"])
def test_fast_dev_run_of_each_algorithm(algo, tiny_corpus, align_ckpt, tmp_path):
    cfg = _cfg(tiny_corpus, tmp_path, f"rl/algo={algo}", "reward=consistency",
               f"init_from={align_ckpt}", "debug=fdr")  # fmt: skip
    assert cfg.stage.module._target_ == "scalar.stages.rl.RLModule"
    assert cfg.stage.monitor == "val/heldout/rec/acc@0.5"
    parts = build(cfg)
    trainer = parts["trainer"]
    fake = FakeWandb()
    trainer.loggers = [*trainer.loggers, fake]
    trainer.fit(parts["module"], datamodule=parts["datamodule"])
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert trainer.global_step == 1
    assert math.isfinite(m["train/loss"])
    for name in ("describe_ground", "format_agreement", "semantic", "total"):
        assert f"train/reward/{name}" in m  # every term logged on its own
    assert "train/reward/ground/exclusive_grounding" in m  # grounding rows: their own terms
    if algo == "dpo":
        assert {"train/margin", "train/accuracy", "train/ground/margin"} <= set(m)
    else:
        assert m["train/kl"] == pytest.approx(0.0, abs=1e-6)  # first step: policy == reference
    assert m["train/ground/kl"] == pytest.approx(0.0, abs=1e-6)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "rl_samples.csv").open(newline="")))
    assert rows and {r["task"] for r in rows} <= {"describe", "format", "gdg", "ground"}
    assert "ground" in {r["task"] for r in rows}
    assert all(r["algo"] == algo for r in rows)
    assert len(fake.tables) == 2 and {t["key"] for t in fake.tables} == {"train/samples"}
    assert [list(map(str, r[4:5])) for t in fake.tables for r in t["data"]] == [
        [r["completion"]] for r in rows
    ]  # the W&B tables hold the CSV's completions


def test_a_step_changes_trainable_parameters_only(tiny_corpus, align_ckpt, tmp_path, monkeypatch):
    cfg = _cfg(tiny_corpus, tmp_path, "rl/algo=grpo", f"init_from={align_ckpt}", "debug=fdr",
               "optim.scheduler=null", "optim.weight_decay=0.0", "rl.algo.kl_beta=0.0")  # fmt: skip
    real = Sampler.score

    def varied(self, model, batch, gen, update=True):  # distinct rewards: non-zero advantages
        total, log, terms, applies = real(self, model, batch, gen, update)
        return np.arange(len(total), dtype=np.float64) % 2, log, terms, applies

    monkeypatch.setattr(Sampler, "score", varied)
    real_ground = Sampler.score_ground

    def varied_ground(self, model, batch, boxes, update=True):
        total, log, ctx = real_ground(self, model, batch, boxes, update)
        return np.arange(len(total), dtype=np.float64) % 2, log, ctx

    monkeypatch.setattr(Sampler, "score_ground", varied_ground)
    parts = build(cfg)
    module = parts["module"]
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    saved = load_checkpoint_file(align_ckpt)["state_dict"]
    assert all(torch.equal(before[k], saved["model." + k]) for k in before)  # init_from applied
    parts["trainer"].fit(module, datamodule=parts["datamodule"])
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("vision.", "region_proj", "concept_proj"))
                   for n in trainable)  # fmt: skip
    assert any(n.startswith("spatial.") for n in trainable)  # the grounding rows' policy
    after = module.model.state_dict()
    frozen = [n for n, _ in module.model.named_parameters() if n not in trainable]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    changed = [n for n in trainable if not torch.equal(before[n], after[n])]
    assert any(n.startswith("llm.") for n in changed)
    assert any(n.startswith("spatial.") for n in changed)
    # the reference stays the initial policy
    ref = dict(module.reference.named_parameters())
    assert all(torch.equal(ref[n], before[n]) for n in changed)


def test_labeled_rewards_run_from_training_batches(tiny_corpus, align_ckpt, tmp_path):
    cfg = _cfg(tiny_corpus, tmp_path, "rl/algo=grpo", "reward=mixed", f"init_from={align_ckpt}",
               "debug=fdr", "data.loader.batch_size=8", images=False)  # fmt: skip
    assert cfg.rl.prompts._target_ == "scalar.rl.sources.LabeledPrompts"  # the reward picks it
    value = train(cfg)
    assert value is None or isinstance(value, float)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "rl_samples.csv").open(newline="")))
    assert rows and {r["task"] for r in rows} <= {"rec", "caption"}


def test_bad_settings_are_clear_errors():
    from hydra.errors import HydraException

    from scalar.rl.algos import DPO, GRPO
    from scalar.rl.sampling import Sampling
    from scalar.rl.sources import ImagePrompts
    from scalar.stages.rl import RLModule

    with pytest.raises(HydraException, match="rl/algo"):
        compose_train(["stage=rl", "rl/algo=ppo"])
    with pytest.raises(ValueError, match="group_size must be >= 2 for grpo"):
        GRPO().check(Sampling(group_size=1))
    with pytest.raises(ValueError, match="rl.sampling: temperature > 0"):
        Sampling(temperature=0.0)
    with pytest.raises(ValueError, match="rl.prompts.roles"):
        ImagePrompts(roles=["ground", "guess"])
    with pytest.raises(ValueError, match="refine_fraction"):
        DPO(refine_fraction=1.5)
    with pytest.raises(ValueError, match="rl/algo"):
        RLModule(torch.nn.Linear(1, 1), None, None, algo="ppo", sampling=Sampling(),
                 prompts=None, rewards=None)  # fmt: skip


def test_resume_is_exact_and_keeps_the_runs_reference(tiny_corpus, align_ckpt, tmp_path):
    """4 GRPO steps in one go == 2 steps, stop, ``ckpt_path=last``, 2 more (weights and the
    KL reference: the policy the run started from, not the resumed one)."""

    def run(name: str, stop: int | None = None, resume: bool = False):
        extra = ["ckpt_path=last"] if resume else []
        cfg = compose_train([
            *tiny_overrides(tiny_corpus, tmp_path / "logs", tmp_path / name), *RL_FAST,
            *IMAGES_FAST, "rl/algo=grpo", f"init_from={align_ckpt}", "trainer.max_steps=4",
            "trainer.limit_val_batches=0", "callbacks.model_checkpoint.monitor=null",
            "callbacks.model_checkpoint.every_n_train_steps=2", "logger=none",
            "~callbacks.lr_monitor", *extra,
        ])  # fmt: skip
        parts = build(cfg)
        if stop:
            parts["trainer"].callbacks.append(StopAt(stop))
        parts["trainer"].fit(parts["module"], datamodule=parts["datamodule"],
                             ckpt_path=parts["ckpt_path"])  # fmt: skip
        return parts["module"]

    whole = run("whole")
    run("split", stop=2)
    resumed = run("split", resume=True)
    assert resumed.trainer.global_step == whole.trainer.global_step == 4
    start = load_checkpoint_file(align_ckpt)["state_dict"]
    for name, w in whole.model.state_dict().items():
        assert torch.allclose(w, resumed.model.state_dict()[name], atol=1e-6), name
    moved = 0
    for name, w in resumed.reference.named_parameters():
        assert torch.equal(w, start["model." + name]), name  # the align weights, not step 2's
        moved += not torch.equal(w, resumed.model.state_dict()[name])
    assert moved > 0
