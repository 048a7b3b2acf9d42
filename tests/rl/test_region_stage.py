"""The region rewards through the real stage: each algorithm runs, logs every term, writes
the sample table (thumbnails, term columns, DPO pairs)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from scalar.train.run import build
from tests.conftest import compose_train
from tests.rl.conftest import RL_FAST, tiny_overrides

RUNS = {  # algo, reward, extra overrides, terms that must be logged
    "scst": ("scst_caption", ["reward.regulariser.entropy=1e-4", "reward.regulariser.varentropy=1e-4",
                              "reward.terms.length.weight=0.1"], ["cider", "length", "exhaustiveness"]),
    "grpo": ("registry", ["rl.algo.mu=2", "data.loader.batch_size=24"], ["iou", "cider", "length", "exhaustiveness"]),
    "dpo": ("spr", [], ["semantic", "localization", "cider"]),
}  # fmt: skip


@pytest.mark.parametrize("algo", sorted(RUNS))
def test_region_rewards_run_and_log_each_term(algo, tiny_corpus, align_ckpt, tmp_path):
    reward, extra, terms = RUNS[algo]
    base = tiny_overrides(tiny_corpus, tmp_path / "logs", tmp_path / "run")
    cfg = compose_train([*base, *RL_FAST, f"rl/algo={algo}", f"reward={reward}",
                         f"init_from={align_ckpt}", "trainer.max_steps=2", "trainer.limit_val_batches=0",
                         "data.loader.batch_size=8", "validate=false", *extra])  # fmt: skip
    parts = build(cfg)
    logged: dict[str, list[float]] = {}
    module = parts["module"]
    real_log = module.log

    def record(name, value, *a, **k):
        logged.setdefault(name, []).append(float(value))
        return real_log(name, value, *a, **k)

    module.log = record
    parts["trainer"].fit(module, datamodule=parts["datamodule"])
    assert parts["trainer"].global_step == 2
    seen = {n.removeprefix("train/reward/") for n in logged if n.startswith("train/reward/")}
    assert set(terms) <= seen, seen
    assert all(math.isfinite(v) for n in logged for v in logged[n] if "loss" in n)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "rl_samples.csv").open()))
    assert rows and {f"term/{t}" for t in terms} <= set(rows[0])
    assert any(r["thumbnail"] for r in rows)
    assert all(
        (Path(cfg.paths.output_dir) / r["thumbnail"]).is_file() for r in rows if r["thumbnail"]
    )
    if algo == "dpo":
        assert any(r["chosen"] for r in rows)
    if algo == "scst":
        assert "train/entropy" in logged and "train/varentropy" in logged
    if algo == "grpo":  # the second step reuses the first rollout (mu = 2)
        assert logged["train/inner_update"] == [0.0, 1.0]


def test_score_regions_scores_the_greedy_descriptions_of_a_split(tiny_corpus, align_ckpt, tmp_path):
    from scripts.score_regions import main
    from tests.eval.conftest import eval_args

    args = eval_args(tiny_corpus, tmp_path / "logs", f"ckpt={align_ckpt}", "split=val",
                     "max_new_tokens=6", f"+out={tmp_path / 'out'}", "+max_batches=1")  # fmt: skip
    out = main(args)
    assert out["semantic_source"] == "own"
    for name in ("semantic", "localization", "cider", "exhaustiveness"):
        assert out[name]["n"] > 0 and 0.0 <= out[name]["mean"] <= (10.0 if name == "cider" else 1.0)
