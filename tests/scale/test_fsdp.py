"""The ``fsdp`` preset in two CPU processes (gloo): gradients, checkpoints, resume, layout.

Lightning's FSDP strategy runs here through :class:`tests.scale.cpu_fsdp.CPUFSDPStrategy`
(FSDP's compute device pinned to the CPU); wrapping, activation checkpointing, sharding
and the sharded checkpoint format are the preset's own.
"""

from __future__ import annotations

import pytest
import torch

from scalar.train.checkpoint import load_checkpoint_file, resolve_ckpt_path
from tests.scale.test_ddp import run_job

TRAINABLE = {"QueryBridge", "RegionPromptEncoder", "SpatialDecoder", "Linear"}
BLOCKS = {"LlamaDecoderLayer", "ResidualAttentionBlock"}


def _weights(ckpt: dict) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}


def _same(ref: dict, got: dict) -> int:
    """Asserts equal weights (float tolerance); returns how many tensors differ from 0."""
    assert set(ref) == set(got)
    for name, w in ref.items():
        assert torch.allclose(w.float(), got[name].float(), atol=1e-5, rtol=0), name
    return len(ref)


@pytest.mark.slow
def test_fsdp_matches_one_process_and_resumes_from_sharded_last_ckpt(tiny_corpus, tmp_path):
    # one process, batch 4, 5 steps; ModelCheckpoint writes last.ckpt (a file) at step 3
    one = run_job(tmp_path / "one.pt", tiny_corpus, tmp_path / "r1", 1, 4, 5, "--save-every", "3")
    one_at3 = _weights(load_checkpoint_file(tmp_path / "r1" / "checkpoints" / "last.ckpt"))
    # FSDP, two ranks of batch 2, the same 5-step run stopped after step 3: the preset's
    # sharded last.ckpt (written at step 3) is a folder
    run = tmp_path / "r2"
    fsdp = ("--strategy", "fsdp", "--save-every", "3")
    two = run_job(tmp_path / "two.pt", tiny_corpus, run, 2, 2, 5, *fsdp, "--stop-at", "3")
    assert two["step"] == 3
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_dir() and (last / ".metadata").is_file()
    assert sorted(p.name for p in last.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert resolve_ckpt_path("last", run, tmp_path) == str(last)  # ckpt_path=last finds it
    merged = load_checkpoint_file(last)
    assert merged["global_step"] == 3 and "scalar" in merged  # meta.pt: loops, run info
    _same(one_at3, _weights(merged))
    moved = [n for n, w in one_at3.items() if not torch.equal(w, one["start"][n])]
    assert len(moved) > 20 and not any(n.startswith("vision.") for n in moved)

    # the same job again with ckpt_path=last: resumes mid-epoch from the shards (weights,
    # momentum buffers, schedule, data position) and ends where one process did
    resumed = run_job(tmp_path / "two5.pt", tiny_corpus, run, 2, 2, 5, *fsdp, "--resume")
    assert resumed["step"] == 5 and [len(r) for r in resumed["ids"]] == [2, 2]  # steps 4, 5
    _same(one["state"], _weights(load_checkpoint_file(run / "final.ckpt")))
    # every rank's rows are the interleaved rows of the one-process batches
    for k, rows in enumerate(one["ids"]):
        ranks = two["ids"] if k < 3 else resumed["ids"]
        step = k if k < 3 else k - 3
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(rows), k
        mean = (two if k < 3 else resumed)["losses"]
        assert abs((mean[0][step] + mean[1][step]) / 2 - one["losses"][k]) < 1e-4


@pytest.mark.slow
def test_fsdp_bf16_layout_frozen_towers_in_bf16_units_trainable_parts_fp32(tiny_corpus, tmp_path):
    """The 7B layout in miniature: a ViT tower and the LLM frozen in bf16, bf16-mixed."""
    run = tmp_path / "r"
    out = run_job(tmp_path / "b.pt", tiny_corpus, run, 2, 2, 3, "--strategy", "fsdp",
                  "--bf16-frozen")  # fmt: skip
    for layout in out["layout"]:  # each rank
        units = layout["units"]
        assert all(len(u["dtypes"]) == 1 for u in units)  # FSDP's one-dtype rule held
        by_kind = {}
        for u in units:
            by_kind.setdefault(u["inner"], set()).update(u["dtypes"])
            assert u["full"] <= 2 * u["shard"] < u["full"] + 2  # half of each unit per rank
        assert by_kind["AlignModule"] == {"torch.bfloat16"}  # root: embeddings, head, stems
        assert all(by_kind[k] == {"torch.bfloat16"} for k in BLOCKS)
        assert all(by_kind[k] == {"torch.float32"} for k in TRAINABLE)
        # the frozen LLM's trainable rows of the added tokens (model.trainable.new_tokens)
        assert by_kind["NewTokenRows"] == {"torch.float32"}
        assert set(by_kind) == {"AlignModule", "NewTokenRows"} | BLOCKS | TRAINABLE
        blocks = [u["inner"] for u in units if u["inner"] in BLOCKS]
        assert sorted(layout["checkpointed"]) == sorted(blocks)  # every block recomputed
        assert (
            blocks.count("LlamaDecoderLayer") == 3 and blocks.count("ResidualAttentionBlock") == 2
        )
    final = _weights(load_checkpoint_file(run / "final.ckpt"))
    moved = 0
    for name, w in final.items():
        start = out["start"][name]
        assert w.dtype == start.dtype, name  # bf16 stays bf16, fp32 stays fp32
        frozen = name.startswith(("vision.", "llm."))
        assert (w.dtype == torch.bfloat16) == (frozen and w.is_floating_point()), name
        if frozen:
            assert torch.equal(w, start), name  # frozen towers never move
        elif not torch.equal(w, start):
            moved += 1
    assert moved > 30
    assert all(torch.isfinite(torch.tensor(r)).all() for r in out["losses"])


def _train_py_fsdp(tiny_corpus, tmp_path, *extra: str):
    """``train.py`` with the fsdp preset on two CPU ranks; returns (process, run folder)."""
    import subprocess
    import sys

    from tests.conftest import ROOT, cli_overrides
    from tests.scale.dist_job import cpu_ranks, launch_env

    env = launch_env(WANDB_MODE="offline")
    args = [a for a in cli_overrides(tiny_corpus, tmp_path / "logs") if a != "trainer=cpu"]
    args += [*cpu_ranks("fsdp"), "trainer.devices=2", "trainer.max_steps=8", "trainer.val_check_interval=4",
             # BatchNorm statistics are buffers FSDP does not keep in step across ranks
             "model.vision.freeze=true", "model.trainable.vision=false", *extra]  # fmt: skip
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    return proc, run, env


@pytest.mark.slow
def test_train_py_under_fsdp_then_eval_py_on_the_sharded_best_checkpoint(tiny_corpus, tmp_path):
    """``train.py trainer=fsdp`` end to end: validation, sharded checkpoints, the post-fit
    validation of the best checkpoint (new module and trainer), then ``eval.py`` on it."""
    import csv
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.eval.conftest import eval_args

    proc, run, env = _train_py_fsdp(tiny_corpus, tmp_path)
    ckpts = run / "checkpoints"
    (best,) = ckpts.glob("best-*.ckpt")
    for folder in (best, ckpts / "last.ckpt"):
        assert (folder / ".metadata").is_file() and len(list(folder.glob("*.distcp"))) == 2
    assert f"evaluated checkpoint: {best}" in proc.stdout
    # the post-fit validation of the best checkpoint repeats the in-fit one of its step
    step = int(best.name.split("step")[1].split(".")[0])
    (log,) = (run / "csv").rglob("metrics.csv")
    rows = [r for r in csv.DictReader(log.open()) if r.get("val/loss")]
    during = next(r for r in rows if int(r["step"]) == step - 1)  # logged after the step
    final = json.loads((run / "metrics.json").read_text())
    for key in ("val/loss", "val/lm", "val/box", "val/heldout/loss", "val/rec/acc@0.5"):
        assert final[key] == pytest.approx(float(during[key]), rel=1e-6, abs=1e-7), key

    cmd = [
        sys.executable,
        str(ROOT / "eval.py"),
        *eval_args(tiny_corpus, tmp_path / "logs", f"ckpt={best}", "split=val", "tasks=[rec]"),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (tmp_path / "logs").rglob("results.json")
    assert json.loads(results.read_text())["splits"]["val"]["rec"]["n"] > 0


@pytest.mark.slow
def test_rl_stage_under_fsdp(tiny_corpus, tmp_path):
    """GRPO on grounding rows under FSDP: the reference is copied before wrapping, and the
    sharded checkpoint carries it and the rollout RNG for an exact resume."""
    import json

    _, run, _ = _train_py_fsdp(
        tiny_corpus, tmp_path, "stage=rl", "rl.sampling.group_size=2", "rl.prompts.batch_size=1",
        "trainer.max_steps=4", "stage.monitor=val/rec/acc@0.5",
    )  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trainer/global_step"] == 4
    assert "train/reward/ground/exclusive_grounding" in metrics
    assert "val/rec/acc@0.5" in metrics  # the post-fit validation ran
    meta = load_checkpoint_file(run / "checkpoints" / "last.ckpt", weights=False)
    assert meta["reference"] and "rollout_rng" in meta
    merged = _weights(load_checkpoint_file(run / "checkpoints" / "last.ckpt"))
    moved = [n for n, w in meta["reference"].items() if not torch.equal(w, merged[n])]
    assert moved  # the policy moved away from the reference it is held to
