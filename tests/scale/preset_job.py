"""Two real optimizer steps of one trainer preset, as a user gets it (run as a script or
called in-process).

``python tests/scale/preset_job.py OUT DATA_DIR RUN_DIR PRESET DEVICES [--fp16]``

The preset's own precision, gradient clipping, optimizer (fused AdamW) and callbacks;
changed are only what a CPU needs: ``trainer.accelerator=cpu``, ``trainer.devices`` and,
for ``fsdp``, FSDP's compute device (:class:`tests.scale.cpu_fsdp.CPUFSDPStrategy`).
``--fp16`` replaces the precision by ``16-mixed`` with a CPU grad scaler (Lightning
turns the ``16-mixed`` flag into ``bf16-mixed`` on a CPU, so the plugin is passed as an
object). With ``DEVICES`` > 1 Lightning's launcher re-runs this script once per extra
rank (gloo). Rank 0 writes ``OUT`` (``torch.save``): the :class:`Probe` record of every
step and the global step reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from tests.conftest import CORPUS, TINY, compose_train  # noqa: E402

CPU_FSDP = "tests.scale.cpu_fsdp.CPUFSDPStrategy"
FP16 = {"_target_": "lightning.pytorch.plugins.precision.MixedPrecision",
        "precision": "16-mixed", "device": "cpu"}  # fmt: skip


def preset_overrides(
    preset: str, data_dir: str, run_dir: str, devices: int = 1, steps: int = 2
) -> list[str]:
    """The tiny model and corpus under ``trainer=<preset>`` on ``devices`` CPU processes."""
    tiny = [o for o in TINY if o != "trainer=cpu"]
    cpu = [f"trainer={preset}", "trainer.accelerator=cpu", f"trainer.devices={devices}"]
    if preset == "fsdp":
        cpu.append(f"trainer.strategy._target_={CPU_FSDP}")
    return [
        *tiny,
        *CORPUS,
        *cpu,
        "callbacks=default",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={run_dir}",
        f"paths.log_dir={run_dir}/logs",
        f"trainer.max_steps={steps}",
        "trainer.limit_val_batches=0",
    ]


def preset_config(preset, data_dir, run_dir, devices=1, fp16=False, steps=2):
    """The composed config of :func:`preset_overrides`; ``fp16``: the 16-mixed plugin."""
    from omegaconf import open_dict

    cfg = compose_train(preset_overrides(preset, data_dir, run_dir, devices, steps))
    if fp16:
        with open_dict(cfg):
            cfg.trainer.precision = None
            cfg.trainer.plugins.append(FP16)
    return cfg


def _sq_norm(params) -> torch.Tensor:
    grads = [p.grad.detach().float() for p in params if p.grad is not None]
    return sum((g.pow(2).sum() for g in grads), torch.zeros(()))


class Probe(L.Callback):
    """Per optimizer step: the global gradient norm before clipping (unscaled), after it
    (what the optimizer steps with), the largest parameter change the step made, and the
    grad scaler's scale before and after (``None`` without a scaler).

    Norms are over every rank's gradients: FSDP ranks hold disjoint shards, whose squared
    norms are summed; DDP ranks hold the same averaged gradients. The norm after clipping
    is taken when the module's ``configure_gradient_clipping`` returns (Lightning calls it
    between ``on_before_optimizer_step`` and the optimizer's update).
    """

    def __init__(self):
        self.steps: list[dict] = []
        self._before: list[torch.Tensor] = []

    @staticmethod
    def _trainable(module) -> list[torch.Tensor]:
        """This rank's trainable values (a ZeRO-3 parameter's own partition)."""
        return [getattr(p, "ds_tensor", p) for p in module.parameters() if p.requires_grad]

    def _norm(self, trainer, module) -> float:
        from torch.distributed.fsdp import FullyShardedDataParallel

        sq = _sq_norm(p for p in module.parameters() if p.requires_grad)
        if isinstance(trainer.model, FullyShardedDataParallel):
            torch.distributed.all_reduce(sq)
        return float(sq.sqrt())

    def _scaler(self, trainer):
        return getattr(trainer.precision_plugin, "scaler", None)

    def setup(self, trainer, module, stage):
        clip = module.configure_gradient_clipping

        def clip_and_record(optimizer, *args, **kwargs):
            clip(optimizer, *args, **kwargs)
            self.steps[-1]["post_clip"] = self._norm(trainer, module)
            self._before = [t.detach().clone() for t in self._trainable(module)]

        module.configure_gradient_clipping = clip_and_record  # Lightning calls the attribute

    def on_before_optimizer_step(self, trainer, module, optimizer):
        from torch.amp.grad_scaler import OptState

        norm, scaler = self._norm(trainer, module), self._scaler(trainer)
        scale = None
        if scaler is not None:
            scale = float(scaler.get_scale())
            stage = scaler._per_optimizer_states[id(optimizer)]["stage"]
            if stage is not OptState.UNSCALED:  # still scaled: the optimizer unscales
                norm /= scale
        self.steps.append({"pre_clip": norm, "scale": scale, "post_clip": None, "change": 0.0})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if not self.steps:
            return
        now = self._trainable(module)
        diffs = [(a.detach() - b).abs().max() for a, b in zip(now, self._before) if b.numel()]
        change = torch.stack(diffs).max().float() if diffs else torch.zeros(())
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(change, op=torch.distributed.ReduceOp.MAX)
        self.steps[-1]["change"] = float(change)
        scaler = self._scaler(trainer)
        if scaler is not None:
            self.steps[-1]["scale_after"] = float(scaler.get_scale())


def run(cfg) -> dict:
    """Train ``cfg`` (two steps) with a :class:`Probe`; the record (rank 0's view)."""
    from scalar.train.run import build

    parts = build(cfg)
    trainer, probe = parts["trainer"], Probe()
    trainer.callbacks.append(probe)
    trainer.fit(parts["module"], datamodule=parts["datamodule"])
    return {
        "step": trainer.global_step,
        "world": trainer.world_size,
        "precision": str(trainer.precision),
        "clip": float(cfg.trainer.gradient_clip_val),
        "optimizer": type(trainer.optimizers[0]).__name__,
        "fused": bool(getattr(trainer.optimizers[0], "defaults", {}).get("fused")),
        "strategy": type(trainer.strategy).__name__,
        "steps": probe.steps,
        "is_global_zero": trainer.is_global_zero,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("out", "data_dir", "run_dir", "preset"):
        ap.add_argument(name)
    ap.add_argument("devices", type=int)
    ap.add_argument("--fp16", action="store_true")
    a = ap.parse_args()
    record = run(preset_config(a.preset, a.data_dir, a.run_dir, a.devices, a.fp16))
    if record["is_global_zero"]:
        torch.save(record, a.out)


if __name__ == "__main__":
    main()
