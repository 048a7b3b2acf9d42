"""Train the tiny model for a few steps, one process or several (run as a script).

``python tests/scale/dist_job.py OUT DATA_DIR RUN_DIR DEVICES BATCH STEPS [options]``.
With ``DEVICES`` > 1 Lightning's launcher re-runs this script once per extra rank (gloo
on CPU). Rank 0 writes ``OUT``: the steps run, every rank's sample ids and losses, the
weights before training and, for DDP and one process, after it (FSDP saves a sharded
checkpoint ``RUN_DIR/final.ckpt`` instead, which the test consolidates).

Options: ``--strategy ddp|fsdp`` (the ``trainer`` preset; FSDP runs through
:class:`tests.scale.cpu_fsdp.CPUFSDPStrategy`), ``--bf16-frozen`` (the 7B layout: frozen
vision tower and LLM stored in bf16, trainable parts fp32), ``--save-every N`` (the
default ModelCheckpoint every N steps, ``RUN_DIR/checkpoints``), ``--stop-at N`` (the
run stops after step N of its ``STEPS``, as if killed after the checkpoint), ``--resume``
(``ckpt_path=last``), ``--streaming DIR`` (read the prepared shards in ``DIR``).

The vision tower is frozen: its BatchNorm then uses running statistics, identical on
every rank (SyncBatchNorm, the GPU answer, refuses CPU tensors). Only the ``rec`` task
with continuous boxes trains, so every sample has the same number of answer tokens and
one box, and the mean loss of the doubled batch equals the average of the two ranks' mean
losses. SGD with momentum (see below).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from tests.conftest import CORPUS, TINY, compose_train  # noqa: E402

CPU_FSDP = "tests.scale.cpu_fsdp.CPUFSDPStrategy"


def cpu_ranks(strategy: str, precision: str = "32-true") -> list[str]:
    """Overrides running the ``strategy`` preset in CPU processes (gloo); with
    ``trainer.devices`` > 1."""
    out = [f"trainer={strategy}", "trainer.accelerator=cpu", f"trainer.precision={precision}"]
    return out + ([f"trainer.strategy._target_={CPU_FSDP}"] if strategy == "fsdp" else [])


def launch_env(**extra: str) -> dict[str, str]:
    """This environment for a launched job: the repository importable, one thread per
    rank, and no rendezvous variables left over from a launcher around the tests."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    for key in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
        env.pop(key, None)
    return env


def overrides(data_dir: str, run_dir: str, devices: int, batch: int, steps: int,
              strategy: str = "ddp", bf16_frozen: bool = False, save_every: int = 0,
              resume: bool = False, streaming: str = "") -> list[str]:  # fmt: skip
    tiny = list(TINY)
    if devices > 1:
        # bf16 storage of the frozen parts needs the preset's bf16-mixed: "32-true" would
        # make Lightning's FSDP plugin cast the whole module to fp32
        precision = "bf16-mixed" if bf16_frozen else "32-true"
        tiny = [o for o in TINY if o != "trainer=cpu"] + cpu_ranks(strategy, precision)
    callbacks = ["callbacks=none"]
    if save_every:
        callbacks = [
            "callbacks=default",
            "~callbacks.lr_monitor",  # needs a logger
            "callbacks.model_checkpoint.monitor=null",  # no validation: keep the newest
            f"callbacks.model_checkpoint.every_n_train_steps={save_every}",
        ]
    frozen = []
    if bf16_frozen:  # the 7B layout in miniature: a ViT tower (LayerNorm, no BatchNorm)
        frozen = ["model.frozen_dtype=bfloat16", "model.trainable.llm=false",
                  "model.vision.name=scalar-tiny-vit", "model.vision.feature_layer=-2",
                  "model.vision.pos_embed=none"]  # fmt: skip
    return [
        *tiny,
        *CORPUS,
        *callbacks,
        *frozen,
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={run_dir}",
        f"paths.log_dir={run_dir}/logs",
        "logger=none",
        "loss=none",  # LM + box only: the batch-wide contrastive term does not split by rank
        "loss.dense_weight=0.0",  # per-item mean over a rank's concepts: counts differ by rank
        "loss.cell_box_weight=0.0",  # per-image mean over a rank's images: rows may share one
        "data.loader.group_size=1",  # rank batches of 2 rows: no whole groups of 4
        "data.tasks.ground_concepts=false",
        "data.tasks.box_format=continuous",
        f"data.loader.batch_size={batch}",
        # SGD with momentum: the update is linear in the gradients, so the comparison tests
        # the gradient averaging, and the momentum buffers are optimizer state a resumed run
        # must restore. Adam would turn gradients that vanish in exact arithmetic (attention
        # key biases: softmax is shift invariant) into lr-sized steps of rounding noise.
        "optim._target_=torch.optim.SGD",
        "+optim.momentum=0.9",
        "~optim.betas",
        "~optim.eps",
        "~optim.fused",
        "optim.lr=1.0",
        "optim.weight_decay=0.0",
        "model.vision.freeze=true",
        "model.trainable.vision=false",
        f"trainer.max_steps={steps}",
        "trainer.limit_val_batches=0",
        f"trainer.devices={devices}",
        "trainer.deterministic=true",
        *(["ckpt_path=last"] if resume else []),
        *([f"data.streaming={streaming}"] if streaming else []),
    ]


class StopAt(L.Callback):
    """Stops training after ``step`` optimizer steps (an interrupted run)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class Seen(L.Callback):
    """Records the sample ids and the loss of every training batch of this rank."""

    def __init__(self):
        self.ids: list[list[str]] = []
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        from scalar.stages.align import sample_ids

        self.ids.append(sample_ids(batch))
        self.losses.append(float(outputs["loss"]))


def fsdp_layout(trainer) -> dict:
    """This rank's FSDP units: class, dtype, shard and full sizes; checkpointed blocks."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    units = []
    for m in trainer.model.modules():
        if isinstance(m, FSDP):
            flat = [p for p in m.params]  # this unit's own flat parameter(s), this rank's shard
            inner = type(m.module).__name__
            if isinstance(m.module, CheckpointWrapper):
                inner = type(m.module._checkpoint_wrapped_module).__name__
            units.append({
                "inner": inner,
                "dtypes": sorted({str(p.dtype) for p in flat}),
                "shard": sum(p.numel() for p in flat),
                "full": sum(p._unpadded_unsharded_size.numel() for p in flat),
            })  # fmt: skip
    ckpt = [type(m._checkpoint_wrapped_module).__name__
            for m in trainer.model.modules() if isinstance(m, CheckpointWrapper)]  # fmt: skip
    return {"units": units, "checkpointed": ckpt}


def job_config(*args, **kwargs):
    """The composed config of :func:`overrides` (same arguments), training ``rec`` only."""
    from omegaconf import open_dict

    cfg = compose_train(overrides(*args, **kwargs))
    with open_dict(cfg):
        cfg.data.tasks.train = {"rec": 1.0}
    return cfg


def main() -> None:
    from scalar.train.run import build

    ap = argparse.ArgumentParser()
    for name in ("out", "data_dir", "run_dir"):
        ap.add_argument(name)
    for name in ("devices", "batch", "steps"):
        ap.add_argument(name, type=int)
    ap.add_argument("--strategy", default="ddp")
    ap.add_argument("--bf16-frozen", action="store_true")
    ap.add_argument("--save-every", type=int, default=0)
    ap.add_argument("--stop-at", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--streaming", default="", help="WebDataset shards folder (data.streaming)")
    a = ap.parse_args()
    cfg = job_config(a.data_dir, a.run_dir, a.devices, a.batch, a.steps, a.strategy,
                     a.bf16_frozen, a.save_every, a.resume, a.streaming)  # fmt: skip
    parts = build(cfg)
    trainer, module = parts["trainer"], parts["module"]
    seen = Seen()
    trainer.callbacks.append(seen)
    if a.stop_at:
        trainer.callbacks.append(StopAt(a.stop_at))
    start = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    trainer.fit(module, datamodule=parts["datamodule"], ckpt_path=parts["ckpt_path"])
    fsdp = a.devices > 1 and a.strategy == "fsdp"
    info = {"world": trainer.world_size, "step": trainer.global_step, "start": start}
    if fsdp:
        trainer.save_checkpoint(str(Path(a.run_dir) / "final.ckpt"))  # a collective
    elif trainer.is_global_zero:
        info["state"] = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    record = (seen.ids, seen.losses, fsdp_layout(trainer) if fsdp else None)
    gathered = [record]
    if trainer.world_size > 1:  # every rank's record reaches rank 0
        gathered = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, record)
    if trainer.is_global_zero:
        info["ids"], info["losses"], info["layout"] = (list(r) for r in zip(*gathered))
        if trainer.world_size == 1:
            info["ids"], info["losses"] = info["ids"][0], info["losses"][0]
        torch.save(info, a.out)


if __name__ == "__main__":
    main()
