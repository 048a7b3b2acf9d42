"""Train the tiny model for a few steps and save its weights (run as a script).

``python tests/scale/ddp_job.py OUT DATA_DIR RUN_DIR DEVICES BATCH STEPS``. With
``DEVICES`` > 1 Lightning's DDP launcher re-runs this script once per extra rank (gloo on
CPU); rank 0 writes the final ``model`` state dict to ``OUT``. The vision tower is frozen:
its BatchNorm then uses running statistics, identical on every rank (SyncBatchNorm, the
GPU answer, refuses CPU tensors). Only the ``rec`` task with continuous boxes trains, so
every sample has the same number of answer tokens and one box, and the mean loss of the
doubled batch equals the average of the two ranks' mean losses. Plain SGD (see below).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from tests.conftest import CORPUS, TINY, compose_train  # noqa: E402


def overrides(data_dir: str, run_dir: str, devices: int, batch: int, steps: int) -> list[str]:
    trainer = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true"]
    tiny = [o for o in TINY if o != "trainer=cpu"] + trainer if devices > 1 else TINY
    return [
        *tiny,
        *CORPUS,
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={run_dir}",
        f"paths.log_dir={run_dir}/logs",
        "logger=none",
        "callbacks=none",
        "loss=none",  # LM + box only: the batch-wide contrastive term does not split by rank
        "loss.dense_weight=0.0",  # per-item mean over a rank's concepts: counts differ by rank
        "data.group_size=1",  # rank batches of 2 rows: no whole groups of 4
        "data.ground_concepts=false",
        "data.box_format=continuous",
        f"data.batch_size={batch}",
        # SGD: the update is linear in the gradient, so the comparison tests the gradient
        # averaging. Adam would turn gradients that vanish in exact arithmetic (attention key
        # biases: softmax is shift invariant) into lr-sized steps of rounding noise.
        "optim._target_=torch.optim.SGD",
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
    ]


class Seen(L.Callback):
    """Records the sample ids and the loss of every training batch of this rank."""

    def __init__(self):
        self.ids: list[list[str]] = []
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        from scalar.stages.align import sample_ids

        self.ids.append(sample_ids(batch))
        self.losses.append(float(outputs["loss"]))


def main(out: str, data_dir: str, run_dir: str, devices: str, batch: str, steps: str) -> None:
    from omegaconf import open_dict

    from scalar.train.run import build

    cfg = compose_train(overrides(data_dir, run_dir, int(devices), int(batch), int(steps)))
    with open_dict(cfg):
        cfg.data.tasks = {"rec": 1.0}
    parts = build(cfg)
    trainer, module = parts["trainer"], parts["module"]
    seen = Seen()
    trainer.callbacks.append(seen)
    start = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    trainer.fit(module, datamodule=parts["datamodule"])
    if trainer.is_global_zero:
        state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
        info = {"world": trainer.world_size, "step": trainer.global_step}
        info["ids"], info["losses"] = seen.ids, seen.losses
    if trainer.world_size > 1:  # every rank's record reaches rank 0
        gathered = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, (seen.ids, seen.losses))
        if trainer.is_global_zero:
            info["ids"] = [r[0] for r in gathered]
            info["losses"] = [r[1] for r in gathered]
    if trainer.is_global_zero:
        torch.save({"state": state, "start": start, **info}, out)


if __name__ == "__main__":
    main(*sys.argv[1:7])
