"""Every trainer preset runs real optimizer steps with its own precision plugin, gradient
clipping, fused AdamW and callbacks (tests/scale/preset_job.py); only the accelerator,
the device count and FSDP's compute device are changed for a CPU.

Each step must clip: the tiny model's gradient norm at initialisation is far above the
presets' ``gradient_clip_val`` of 1.0, so the optimizer must see a norm of exactly 1.0,
and the step must move the parameters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.scale.dist_job import launch_env
from tests.scale.preset_job import preset_config, run

JOB = Path(__file__).with_name("preset_job.py")
ROOT = JOB.parents[2]


def check_steps(rec: dict, precision: str, world: int = 1, steps: int = 2) -> int:
    """``steps`` steps ran with the fused AdamW of ``optim=adamw``; each one clipped the
    global norm to the threshold and changed the parameters, except where a grad scaler
    found inf gradients: there nothing moved and the scale backed off. Returns how many
    steps were skipped so."""
    assert (rec["step"], rec["world"], rec["precision"]) == (steps, world, precision)
    assert rec["optimizer"] == "AdamW" and rec["fused"] and rec["clip"] == 1.0
    assert len(rec["steps"]) == steps
    skipped = 0
    for s in rec["steps"]:
        if s.get("scale_after") is not None and s["scale_after"] < s["scale"]:
            assert s["change"] == 0.0, s  # found inf: the fused kernel skipped the update
            skipped += 1
            continue
        assert s["pre_clip"] > 5 * rec["clip"], s  # the clip is active
        assert s["post_clip"] == pytest.approx(rec["clip"], rel=1e-3), s
        assert s["change"] > 1e-6, s
    assert skipped < steps, rec["steps"]
    return skipped


@pytest.fixture
def one_process(tiny_corpus, tmp_path):
    """``run(preset, fp16=False, steps=2)`` in this process; a process group that a DDP or
    FSDP strategy started (world size 1) is closed and the environment restored after."""
    env = dict(os.environ)

    def run_preset(preset: str, fp16: bool = False, steps: int = 2) -> dict:
        return run(preset_config(preset, str(tiny_corpus), str(tmp_path / "run"), 1, fp16, steps))

    yield run_preset
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os.environ.clear()
    os.environ.update(env)


@pytest.mark.parametrize(
    ("preset", "precision", "strategy"),
    [("cpu", "32-true", "SingleDeviceStrategy"), ("gpu", "bf16-mixed", "SingleDeviceStrategy"),
     ("ddp", "bf16-mixed", "DDPStrategy"), ("fsdp", "bf16-mixed", "CPUFSDPStrategy")],
)  # fmt: skip
def test_one_process_preset_steps_clip_and_move(one_process, preset, precision, strategy):
    rec = one_process(preset)
    assert rec["strategy"] == strategy
    assert check_steps(rec, precision) == 0


def test_fp16_grad_scaler_unscales_before_clipping_for_the_fused_optimizer(one_process):
    """16-mixed: the scaler starts at 2**16, where the tiny model's fp16 gradients
    overflow, so the first steps are skipped (inf reaches the fused kernel after the
    unscaling) and the scale halves until steps go through, clipped to 1.0."""
    rec = one_process("gpu", fp16=True, steps=5)
    assert 1 <= check_steps(rec, "16-mixed", steps=5) <= 4
    assert rec["steps"][0]["scale"] == 2.0**16


def run_job(tmp_path: Path, data: Path, preset: str, devices: int) -> dict:
    out = tmp_path / f"{preset}{devices}.pt"
    args = [sys.executable, str(JOB), str(out), str(data), str(tmp_path / preset), preset]
    proc = subprocess.run(
        [*args, str(devices)], env=launch_env(), cwd=ROOT, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "strategy"), [("ddp", "DDPStrategy"), ("fsdp", "CPUFSDPStrategy")]
)
def test_two_process_presets_steps_clip_and_move(tiny_corpus, tmp_path, preset, strategy):
    rec = run_job(tmp_path, tiny_corpus, preset, 2)
    assert rec["strategy"] == strategy
    assert check_steps(rec, "bf16-mixed", world=2) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["gpu", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_presets_on_a_real_gpu(tiny_corpus, tmp_path, preset):
    """``pytest -m gpu tests/scale/test_preset_steps.py``: the presets as they are (CUDA,
    one GPU, Lightning's own FSDP strategy). DeepSpeed keeps its gradients in its own
    partitioned buffers and clips inside its engine, so there only the steps and the
    parameter change are checked."""
    from omegaconf import open_dict

    assert torch.cuda.is_available(), "the gpu marker needs a CUDA device"
    cfg = preset_config(preset, str(tiny_corpus), str(tmp_path / "run"))
    with open_dict(cfg):
        cfg.trainer.accelerator, cfg.trainer.devices = "gpu", 1
        if preset == "fsdp":
            cfg.trainer.strategy._target_ = "lightning.pytorch.strategies.FSDPStrategy"
    env = dict(os.environ)
    try:
        rec = run(cfg)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(env)
    if preset.startswith("deepspeed"):
        assert rec["step"] == 2 and len(rec["steps"]) == 2
        assert all(s["change"] > 0 for s in rec["steps"]), rec["steps"]
    else:
        assert check_steps(rec, "bf16-mixed") == 0
