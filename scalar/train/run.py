"""``train(cfg)``: build everything from the composed config, fit, evaluate, record the run."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from scalar.core.io import write_json
from scalar.data.ledger import record_skips
from scalar.data.resume import make_resumable
from scalar.train.callbacks import RngState, RunInfo
from scalar.train.checkpoint import (
    CKPT_DIR,
    LAST,
    UserError,
    check_checkpoint,
    clean_stale_tmp,
    is_local,
    load_checkpoint_file,
    load_weights,
)
from scalar.train.env import environment
from scalar.train.interrupt import Interrupt
from scalar.train.lineage import resolve_resume
from scalar.train.strategies import recompute_once
from scalar.train.tokenizer_record import fingerprint, save_tokenizer, share_tokenizer

log = logging.getLogger(__name__)


def _objects(group: Any) -> list[Any]:
    """Instantiate every ``_target_`` entry of a name -> config group (loggers, callbacks)."""
    out = []
    for name, item in (group or {}).items():
        if item is None:
            continue
        if not isinstance(item, DictConfig) or "_target_" not in item:
            raise UserError(f"config entry '{name}' has no _target_")
        out.append(instantiate(item))
    return out


def build_optim(cfg: DictConfig) -> tuple[Any, Any]:
    """The optimizer partial and the scheduler partial (or ``None``) of ``cfg.optim``."""
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    scheduler = optim.pop("scheduler", None)
    # plain lists (betas): checkpoints hold no OmegaConf objects (torch.load weights_only)
    return instantiate(optim, _convert_="all"), instantiate(scheduler) if scheduler else None


def _local_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", 0)) == 0


def _wandb_resume_id(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Continue the W&B run recorded in the checkpoint when one is resumed."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not ckpt_path or wandb_cfg is None or wandb_cfg.get("id") or not is_local(ckpt_path):
        return
    meta = load_checkpoint_file(ckpt_path, weights=False)
    run_id = (meta.get("scalar") or {}).get("wandb_run_id")
    if run_id:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id


def wandb_sweep_names(cfg: DictConfig) -> None:
    """In a multirun, name each job's W&B run by its overrides (``a=1,b=2``) and group the
    runs of one sweep as ``<task_name>/<sweep folder>`` (unless logger.wandb sets a group)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None or not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return
    with open_dict(cfg):
        if wandb_cfg.get("name") == cfg.get("task_name"):  # the default name
            wandb_cfg.name = hc.job.override_dirname or f"{cfg.task_name}-{hc.job.num}"
        if wandb_cfg.get("group") is None:
            wandb_cfg.group = f"{cfg.task_name}/{Path(hc.sweep.dir).name}"


def _single_log_stream() -> None:
    """Let Lightning's messages reach the run's log handlers once (not also its own stream)."""
    if not logging.getLogger().handlers:
        return  # nobody configured logging (tests, notebooks): keep Lightning's handlers
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        lg.handlers = [h for h in lg.handlers if type(h) is not logging.StreamHandler]
        lg.propagate = True


def build_module(cfg: DictConfig, datamodule: Any = None, init: bool = True) -> L.LightningModule:
    """The stage's LightningModule around a new model (``init_from`` weights if ``init``)."""
    model = instantiate(cfg.model)
    if datamodule is not None:
        _check_preprocess(model, datamodule)
        share_tokenizer(model, datamodule)  # the data is tokenized with the model's tokenizer
    optimizer, scheduler = build_optim(cfg)
    module = instantiate(cfg.stage.module)(
        model=model, loss=instantiate(cfg.loss), optimizer=optimizer, scheduler=scheduler
    )
    if init and cfg.get("init_from"):
        n = load_weights(module.model, cfg.init_from, key="init_from")
        log.info("init_from %s: loaded %d weight tensors", cfg.init_from, n)
    return module


def _evaluation_after_fit(cfg: DictConfig, trainer: L.Trainer, module: Any, ckpt: str | None):
    """The trainer and module to validate / test with once ``fit`` has returned.

    Under FSDP, Lightning cannot run the fitted module again: FSDP wrapped its parts in
    place, and a second ``validate`` sees the root's flattened shards instead of weights
    (Lightning issue 20373). There, a new module and trainer load the checkpoint (written
    first if the run kept none); the loggers carry on. Elsewhere, the same ones.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(trainer.strategy, FSDPStrategy):
        return trainer, module, ckpt
    if ckpt is None:
        ckpt = str(Path(cfg.paths.output_dir) / CKPT_DIR / LAST)
        trainer.save_checkpoint(ckpt)
    fresh = instantiate(cfg.trainer, logger=trainer.loggers or False, callbacks=[])
    return fresh, build_module(cfg, init=False), ckpt


def cpu_threads(setting: Any, trainer: Any) -> int | None:
    """Torch threads for each training process: ``auto`` shares the machine's cores among
    the processes of a CPU trainer (``devices``; at least one each) and leaves other
    accelerators alone (None); an integer is taken as it is; None leaves torch's default."""
    if setting is None:
        return None
    if setting == "auto":
        trainer = trainer or {}
        if trainer.get("accelerator") != "cpu":
            return None
        devices = trainer.get("devices", 1)
        processes = devices if isinstance(devices, int) and devices > 0 else 1
        return max(1, (os.cpu_count() or 1) // processes)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise UserError(f"cpu_threads must be auto, null or a positive integer, got {setting!r}")
    return setting


def build(cfg: DictConfig) -> dict[str, Any]:
    """Datamodule, module, trainer and what a run needs to start; no training yet."""
    _single_log_stream()
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg.seed), workers=True)
    threads = cpu_threads(cfg.get("cpu_threads"), cfg.get("trainer"))
    if threads:
        torch.set_num_threads(threads)
        log.info("cpu_threads: %d torch thread(s) in this process", threads)
    if cfg.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)

    # checkpoints are checked (and the resume chosen) before the corpus loads
    ckpt_path = resolve_resume(cfg, run_dir, run_dir.parent)
    if cfg.get("init_from"):
        check_checkpoint(cfg.init_from, "init_from")
    stale = clean_stale_tmp(run_dir / CKPT_DIR)  # and the resumed run's (no longer running)
    stale += clean_stale_tmp(Path(ckpt_path).parent) if ckpt_path and is_local(ckpt_path) else []
    if stale:
        log.warning("removed %d partial checkpoint file(s): %s", len(stale), stale[:3])
    datamodule = instantiate(cfg.data)
    if _local_rank_zero() and hasattr(datamodule, "prepare_data"):
        datamodule.prepare_data()  # builds the synthetic corpus and its tokenizer if missing
    module = build_module(cfg, datamodule)
    _make_train_loader_resumable(datamodule, int(cfg.seed), module)
    model = module.model
    _wandb_resume_id(cfg, ckpt_path)
    wandb_sweep_names(cfg)

    config = OmegaConf.to_container(cfg, resolve=True)
    env = environment(cfg.paths.root_dir, int(cfg.seed))
    loggers = _objects(cfg.get("logger"))
    callbacks = _objects(cfg.get("callbacks"))
    tokenizer = getattr(model, "tokenizer", None)
    record = fingerprint(tokenizer) if tokenizer is not None else None
    callbacks += [RunInfo(config, env["versions"], tokenizer=record), RngState(), Interrupt()]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    if recompute_once(trainer.strategy, model):
        log.info("the strategy checkpoints the LLM blocks: transformers' own checkpointing is off")
    return {
        "run_dir": run_dir,
        "datamodule": datamodule,
        "module": module,
        "trainer": trainer,
        "ckpt_path": ckpt_path,
        "config": config,
        "env": env,
    }


def _check_preprocess(model: Any, datamodule: Any) -> None:
    """The data layer must resize and normalise images the way the vision tower expects."""
    check = getattr(getattr(model, "vision", None), "check_preprocess", None)
    if callable(check) and all(hasattr(datamodule, k) for k in ("image_size", "mean", "std")):
        check(datamodule.image_size, datamodule.mean, datamodule.std)


def _make_train_loader_resumable(datamodule: Any, seed: int, module: Any = None) -> None:
    """Wrap the datamodule's train loader so a mid-epoch resume continues exactly; a
    module with a ``train_loader(datamodule)`` hook (the RL stage's prompts) supplies its
    own loader unless the hook returns ``None``."""
    make = getattr(datamodule, "train_dataloader", None)
    if make is None:
        return
    own = getattr(module, "train_loader", None)

    def train_dataloader():
        loader = own(datamodule) if own is not None else None
        return make_resumable(make() if loader is None else loader, seed)

    datamodule.train_dataloader = train_dataloader


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[key] = float(value)
        elif isinstance(value, int | float):
            out[key] = float(value)
    return out


def _best_ckpt(trainer: L.Trainer) -> str | None:
    cb = trainer.checkpoint_callback
    path = getattr(cb, "best_model_path", "") if cb is not None else ""
    return path or None


def summary_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "(no metrics)"
    width = max(len(k) for k in metrics)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    for key in sorted(metrics):
        lines.append(f"{key:<{width}}  {metrics[key]:.4f}")
    return "\n".join(lines)


def _finish_wandb() -> None:
    """Close the job's W&B run: the next job of a multirun starts its own (Lightning's
    logger would otherwise reuse the run still open in this process)."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def train(cfg: DictConfig) -> float | None:
    """Run one job; returns the monitored metric (``optimized_metric``) for sweepers."""
    try:
        return _train(cfg)
    finally:
        _finish_wandb()


def _train(cfg: DictConfig) -> float | None:
    parts = build(cfg)
    trainer: L.Trainer = parts["trainer"]
    module, datamodule = parts["module"], parts["datamodule"]
    run_dir: Path = parts["run_dir"]
    if trainer.is_global_zero:
        OmegaConf.save(OmegaConf.create(parts["config"]), run_dir / "config.yaml")
        write_json(run_dir / "env.json", parts["env"])
        if getattr(module.model, "tokenizer", None) is not None:
            save_tokenizer(module.model.tokenizer, run_dir)
    for logger in trainer.loggers:
        logger.log_hyperparams(parts["config"])

    metrics: dict[str, float] = {}
    ckpt_path = parts["ckpt_path"]
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update(_flat(trainer.callback_metrics))
        metrics["train/nan_skips"] = float(getattr(module, "nan_skips", 0))
        metrics["trainer/global_step"] = float(trainer.global_step)
        ckpt_path = _best_ckpt(trainer)
    eval_ckpt = ckpt_path if ckpt_path and Path(ckpt_path).exists() else None
    if cfg.get("train", True) and (cfg.get("validate", True) or cfg.get("test", False)):
        trainer, module, eval_ckpt = _evaluation_after_fit(cfg, trainer, module, eval_ckpt)
    if cfg.get("validate", True):
        for result in trainer.validate(module, datamodule=datamodule, ckpt_path=eval_ckpt):
            metrics.update(_flat(result))
    if cfg.get("test", False):
        for result in trainer.test(module, datamodule=datamodule, ckpt_path=eval_ckpt):
            metrics.update(_flat(result))

    if trainer.is_global_zero:
        metrics.update(record_skips(datamodule, run_dir))  # skips.json, skips/<split>/<reason>
        record = dict(metrics)
        write_json(run_dir / "metrics.json", record)
        print(summary_table(metrics))
        if eval_ckpt:
            print(f"evaluated checkpoint: {eval_ckpt}")
        print(f"run folder: {run_dir}")
    name = cfg.get("optimized_metric") or cfg.stage.get("monitor")
    return metrics.get(name, math.nan) if name else None  # nan: a failed trial for Optuna
