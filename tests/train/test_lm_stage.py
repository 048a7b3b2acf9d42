"""``stage=lm`` end to end through the real Hydra config: held-out perplexity, exact resume,
and ``model.llm.init_from`` from its checkpoint into an align run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalar.train.errors import run_guarded
from scalar.train.run import build, train
from tests.conftest import TINY, compose_train
from tests.train.test_run import Recorder, _fit

# the tiny settings of the other runs but those of the scene data and of generation
LM = [o for o in TINY if not o.startswith(("data", "stage.module."))]
LM += ["stage=lm", "trainer.val_check_interval=3", "data.batch_size=8", "data.val_batch_size=32"]


@pytest.fixture
def lm_cfg(tiny_corpus, tmp_path):
    """The tiny corpus's tokenizer (the model's), the concept text written under tmp_path."""

    def make(*overrides, run_dir=None):
        run = run_dir or tmp_path / "run"
        paths = [f"paths.data_dir={tiny_corpus}", f"paths.log_dir={tmp_path / 'logs'}",
                 f"paths.output_dir={run}", f"data.root={tmp_path / 'concepts'}"]  # fmt: skip
        return compose_train([*LM, *paths, *overrides])

    return make


def test_perplexity_is_exp_of_the_mean_token_nll(lm_cfg):
    cfg = lm_cfg("train=false")
    parts = build(cfg)
    module, dm = parts["module"], parts["datamodule"]
    [result] = parts["trainer"].validate(module, datamodule=dm)
    model = module.model.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for _, ids in dm.rows["heldout"]:  # each sentence alone: no padding at all
            logits = model.llm(input_ids=torch.tensor([ids])).logits[0]
            logits[:, list(model.prompt_only_ids)] = -1e4  # never predicted (lm_logits)
            nll += float(F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum"))
            count += len(ids) - 1
    assert result["val/perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert result["val/nll"] == pytest.approx(nll / count, rel=1e-4)
    assert len(dm.rows["heldout"]) > 50 and len(dm.rows["train"]) > 500


def test_lm_stage_resumes_exactly(lm_cfg, tmp_path):
    common = ["trainer.max_steps=6", "trainer.limit_val_batches=0", "validate=false"]
    full = Recorder()
    _fit(lm_cfg(*common, run_dir=tmp_path / "full"), full)
    assert sorted(full.steps) == [1, 2, 3, 4, 5, 6]
    assert all(s["ids"][0].startswith("concepts:train/") for s in full.steps.values())
    first = Recorder(sigterm_at=3)
    with pytest.raises(SystemExit):
        _fit(lm_cfg(*common, run_dir=tmp_path / "cut"), first)
    second = Recorder()
    _fit(lm_cfg(*common, f"ckpt_path={tmp_path / 'cut'}", run_dir=tmp_path / "res"), second)
    assert sorted(first.steps) == [1, 2, 3] and sorted(second.steps) == [4, 5, 6]
    joined = {**first.steps, **second.steps}
    for step, want in full.steps.items():
        assert joined[step]["ids"] == want["ids"], step
        assert joined[step]["rand"] == want["rand"], step
        assert joined[step]["loss"] == pytest.approx(want["loss"], rel=0, abs=1e-6), step
    assert len({s["loss"] for s in full.steps.values()}) == 6  # it learns: the losses move


def test_init_from_an_lm_checkpoint_starts_the_align_llm(lm_cfg, make_cfg, tmp_path, capsys):
    cfg = lm_cfg("trainer.max_steps=3", "validate=false", run_dir=tmp_path / "lm")
    train(cfg)
    ckpt = tmp_path / "lm" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    align = build(make_cfg(f"model.llm.init_from={ckpt}", "train=false"))
    model = align["module"].model
    for k, v in model.llm.state_dict().items():
        assert torch.equal(v, state[f"model.llm.{k}"]), k
    fresh = build(make_cfg("train=false"))["module"].model  # the same seed without it
    assert not torch.equal(fresh.llm.lm_head.weight, model.llm.lm_head.weight)
    bad = make_cfg(f"model.llm.init_from={tmp_path / 'nope.ckpt'}", "train=false")
    with pytest.raises(SystemExit) as code:
        run_guarded(train, bad)
    assert code.value.code == 2
    err = capsys.readouterr().err
    # (a logging handler left by an earlier test of the session may also print a "Logging
    # error" report to the captured stream; the user's mistake itself gives one error line)
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: model.llm.init_from={tmp_path / 'nope.ckpt'}: checkpoint file not found"
    ]
