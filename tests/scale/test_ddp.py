"""Two-process DDP (gloo, CPU) equals one process with the doubled batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scalar.data.dataset import MixtureSampler
from tests.scale.dist_job import job_config, launch_env

JOB = Path(__file__).with_name("dist_job.py")
ROOT = JOB.parents[2]


def test_rank_batches_are_the_interleaved_rows_of_the_global_batch():
    tasks = ["rec"] * 13 + ["roc"] * 7
    weights = {"rec": 1.0, "roc": 0.5}
    single = MixtureSampler(tasks, weights, seed=3)
    ranks = [MixtureSampler(tasks, weights, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    glob, per = list(single), [list(s) for s in ranks]
    b = 2  # per-rank batch; the single process uses 2 * b
    for k in range(len(glob) // (2 * b)):
        rows = glob[2 * b * k : 2 * b * (k + 1)]
        assert per[0][b * k : b * (k + 1)] == rows[0::2]
        assert per[1][b * k : b * (k + 1)] == rows[1::2]


def run_job(
    out: Path, data: Path, run: Path, devices: int, batch: int, steps: int, *opts: str
) -> dict:
    """Run ``dist_job.py`` (``opts``: its options) and load what rank 0 wrote."""
    env = launch_env()
    args = [sys.executable, str(JOB), str(out), str(data), str(run), str(devices)]
    proc = subprocess.run(
        [*args, str(batch), str(steps), *opts], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


def _rec_datamodule(tiny_corpus: Path, tmp_path: Path):
    """The single-process job's data module, set up for fitting."""
    from hydra.utils import instantiate

    dm = instantiate(job_config(str(tiny_corpus), str(tmp_path / "x"), 1, 4, 1).data)
    dm.setup("fit")
    return dm


def _answer_token_counts(dm) -> set[int]:
    batch = dm.collator([dm._dataset("train")[i] for i in range(len(dm.samples["train"]))])
    labels = (batch["labels"] != -100).sum(1).tolist()
    assert len(batch["target_boxes"]) == len(labels)  # one box per sample
    return set(labels)


def _shards(dm, out: Path) -> Path:
    """``python -m scalar.data shard``'s writer on the job's samples (rec only)."""
    from scalar.data.shards import write_shards

    write_shards(dm.samples, out, shard_size=8)
    return out


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process_with_doubled_batch(tiny_corpus, tmp_path):
    # precondition of the equivalence: equal normalisers (answer tokens, boxes) per sample
    dm = _rec_datamodule(tiny_corpus, tmp_path)
    assert len(_answer_token_counts(dm)) == 1
    steps = 3
    one = run_job(tmp_path / "one.pt", tiny_corpus, tmp_path / "r1", 1, 4, steps)
    two = run_job(tmp_path / "two.pt", tiny_corpus, tmp_path / "r2", 2, 2, steps)
    # the same two ranks reading prepared WebDataset shards instead of the corpus
    shards = _shards(dm, tmp_path / "shards")
    streamed = run_job(tmp_path / "s.pt", tiny_corpus, tmp_path / "r3", 2, 2, steps,
                       "--streaming", str(shards))  # fmt: skip
    assert streamed["ids"] == two["ids"] and streamed["losses"] == two["losses"]
    assert all(torch.equal(w, streamed["state"][n]) for n, w in two["state"].items())
    assert (one["world"], two["world"]) == (1, 2)
    assert one["step"] == two["step"] == steps
    moved = 0
    for name, w in one["state"].items():
        other = two["state"][name]
        assert torch.allclose(w, other, atol=1e-5, rtol=0), name
        if w.is_floating_point() and not torch.equal(w, one["start"][name]):
            moved += 1
            assert not name.startswith("vision."), name  # the frozen tower never moves
    assert moved > 20  # training changed the trainable weights
