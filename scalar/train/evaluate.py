"""``evaluate(cfg)``: load a checkpoint, score the tasks on full splits, write the run folder.

The model config is the one saved in the checkpoint (``ckpt['scalar']['config']``) unless
``model_source=config``; ``model.*`` keys given on the command line still override it.
The run folder gets ``config.yaml``, ``env.json``, ``results.json``, ``results.md``,
``predictions/<task>_<split>.jsonl`` and ``pictures/``; W&B (when configured) gets the
metrics, the same pictures and a predictions table with box thumbnails.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from scalar.core.io import write_json
from scalar.eval.baselines import spatial_qa_baselines, train_reader
from scalar.eval.data import EvalDataModule
from scalar.eval.predictions import write_predictions
from scalar.eval.report import (
    protocol,
    results_markdown,
    summary_lines,
    wandb_pictures,
    wandb_tables,
)
from scalar.stages.evaluate import TASKS, EvalModule
from scalar.train.checkpoint import (
    UserError,
    check_checkpoint,
    is_checkpoint,
    latest_run_checkpoint,
    load_checkpoint_file,
    load_weights,
    resolve_ckpt_path,
)
from scalar.train.env import environment
from scalar.train.run import _objects, wandb_sweep_names

log = logging.getLogger(__name__)
SCENE_DATAMODULE = "scalar.data.datamodule.SceneDataModule"


def resolve_eval_ckpt(cfg: DictConfig) -> str:
    """``cfg.ckpt`` as a checkpoint file: a path, a run folder, or ``last``."""
    if OmegaConf.is_missing(cfg, "ckpt") or cfg.get("ckpt") in (None, "", "null", "none"):
        raise UserError(
            "ckpt is required: ckpt=<file.ckpt>, ckpt=<training run folder> or ckpt=last"
        )
    value = str(cfg.ckpt)
    runs_dir = Path(cfg.get("ckpt_runs_dir") or Path(cfg.paths.log_dir) / "train" / "runs")
    if value == "last":
        found = latest_run_checkpoint(runs_dir)
        if found is None:
            raise UserError(f"ckpt=last: no training run with checkpoints/last.ckpt in {runs_dir}")
        return str(found)
    path = resolve_ckpt_path(value, Path(cfg.paths.output_dir), runs_dir)
    if path is None or not is_checkpoint(Path(path)):  # a file or a sharded folder
        raise UserError(f"checkpoint not found: {value}")
    return path


def _cli_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ValueError, ImportError):  # no Hydra app running (tests, notebooks)
        return []


def override_keys(overrides: list[str]) -> list[str]:
    """The config keys that command-line ``overrides`` set (``+`` / ``~`` prefixes dropped)."""
    return [o.split("=", 1)[0].lstrip("+~") for o in overrides]


def model_config(cfg: DictConfig, saved: dict, overrides: list[str]) -> DictConfig:
    """The model config to build: the checkpoint's, with ``model.*`` overrides applied."""
    keys = override_keys(overrides)
    if cfg.get("model_source", "ckpt") == "config" or "model" in keys:
        return cfg.model
    model = (saved or {}).get("model")
    if not model:
        log.warning("the checkpoint holds no model config: using the model group (%s)", cfg.model)
        return cfg.model
    out = OmegaConf.create(model)
    for key in keys:
        if key.startswith("model."):
            sub = key[len("model.") :]
            OmegaConf.update(out, sub, OmegaConf.select(cfg.model, sub), force_add=True)
    return out


WORLD_KEYS = ("difficulty", "geometry")  # what makes one synthetic world another


def data_world(cfg: DictConfig, saved: dict, overrides: list[str]) -> dict[str, Any]:
    """Evaluate on the synthetic world the checkpoint was trained on: copy its
    ``data.synthetic`` difficulty / geometry into ``cfg.data`` unless the command line
    names the data (``data=``, ``data.root``, ``data.synthetic.*``), so a model trained with
    ``data.synthetic.difficulty=default`` is not scored on the flat world by omission.
    Returns the keys changed."""
    keys = override_keys(overrides)
    if any(k in ("data", "data.root", "data.synthetic") or k.startswith("data.synthetic.")
           for k in keys):  # fmt: skip
        return {}
    world = ((saved or {}).get("data") or {}).get("synthetic") or {}
    ours = cfg.data.get("synthetic")
    if not isinstance(world, dict) or ours is None:
        return {}
    changed = {k: world[k] for k in WORLD_KEYS if k in world and ours.get(k) != world[k]}
    if changed:
        with open_dict(cfg):
            for k, v in changed.items():
                cfg.data.synthetic[k] = v
        log.info("data: the checkpoint's synthetic world %s (set data.synthetic.* to score another)", changed)  # fmt: skip
    return changed


def eval_splits(cfg: DictConfig) -> list[str]:
    splits = cfg.get("splits") or [cfg.get("split")]
    splits = [str(s) for s in (splits if not isinstance(splits, str) else [splits]) if s]
    known = list((cfg.data.get("corpora") or {}).keys())
    unknown = [s for s in splits if s not in known]
    if not splits or unknown:
        raise UserError(f"unknown split(s) {unknown or splits}; data.corpora has {known}")
    return list(dict.fromkeys(splits))


def eval_tasks(cfg: DictConfig) -> list[str]:
    tasks = cfg.get("tasks")
    tasks = [tasks] if isinstance(tasks, str) else list(tasks or [])
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise UserError(f"unknown task(s) {unknown or tasks}; valid: {list(TASKS)}")
    return [t for t in TASKS if t in tasks]


def data_config(cfg: DictConfig, splits: list[str]) -> DictConfig:
    """``cfg.data`` (edited in place) reading only ``splits``, with the eval loaders."""
    data = cfg.data
    target = data.get("_target_")
    if target not in (SCENE_DATAMODULE, f"{EvalDataModule.__module__}.EvalDataModule"):
        raise UserError(f"eval needs a SceneDataModule data config, got _target_={target}")
    with open_dict(cfg):
        data._target_ = f"{EvalDataModule.__module__}.EvalDataModule"
        data.corpora = {s: data.corpora[s] for s in splits}
        data.splits.val, data.splits.test, data.splits.predict = splits, splits, splits
    return data


def build(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Checkpoint, model, datamodule (set up), module and trainer of an evaluation."""
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tasks, splits = eval_tasks(cfg), eval_splits(cfg)
    ckpt_path = resolve_eval_ckpt(cfg)
    check_checkpoint(ckpt_path, "ckpt")  # empty, truncated or not a checkpoint: one line
    ckpt = load_checkpoint_file(ckpt_path)
    saved = (ckpt.get("scalar") or {}).get("config") or {}
    overrides = _cli_overrides() if overrides is None else list(overrides)
    with open_dict(cfg):
        cfg.model = model_config(cfg, saved, overrides)
    data_world(cfg, saved, overrides)
    L.seed_everything(int(cfg.seed), workers=True)
    model = instantiate(cfg.model)
    n = load_weights(model, ckpt, ckpt_path)  # the checkpoint's tokenizer, strict keys
    log.info("loaded %d weight tensors from %s", n, ckpt_path)
    del ckpt
    baseline_reader = train_reader(cfg) if "spatial_qa" in tasks else None  # before narrowing
    datamodule = instantiate(data_config(cfg, splits), tokenizer=model.tokenizer)
    datamodule.setup("validate")
    vision = cfg.model.get("vision") or {}
    module = EvalModule(
        model,
        tasks=tasks,
        max_new_tokens=int(cfg.max_new_tokens),
        iou_thresholds=list(cfg.iou_thresholds),
        meteor=bool(cfg.get("meteor", True)),
        spice=bool(cfg.get("spice", False)),
        pictures=int(cfg.get("pictures") or 0),
        picture_dir=str(run_dir),
        image_mean=list(vision["mean"]) if vision.get("mean") else None,
        image_std=list(vision["std"]) if vision.get("std") else None,
        bootstrap_resamples=int(cfg.get("bootstrap_resamples") or 0),
        bootstrap_seed=int(cfg.get("bootstrap_seed") or 0),
    )
    wandb_sweep_names(cfg)
    loggers = _objects(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    return {"run_dir": run_dir, "ckpt_path": ckpt_path, "tasks": tasks, "splits": splits,
            "datamodule": datamodule, "module": module, "trainer": trainer,
            "baseline_reader": baseline_reader}  # fmt: skip


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the evaluation described by ``cfg`` (``conf/eval.yaml``); returns results.json."""
    parts = build(cfg, overrides)
    trainer: L.Trainer = parts["trainer"]
    module: EvalModule = parts["module"]
    dm, splits = parts["datamodule"], parts["splits"]
    if dm.eval_split_names("val"):
        with warnings.catch_warnings():  # the logged values are already gathered over ranks
            warnings.filterwarnings("ignore", message=r".*self\.log\('eval/.*sync_dist=True")
            trainer.validate(module, datamodule=dm)
    else:
        log.warning("no split of %s has samples to evaluate", splits)
    results = assemble(cfg, parts, module)
    if trainer.is_global_zero:
        write_outputs(cfg, parts, module, results)
    return results


def assemble(cfg: DictConfig, parts: dict[str, Any], module: EvalModule) -> dict[str, Any]:
    dm = parts["datamodule"]
    per_split: dict[str, dict[str, Any]] = {}
    for split in parts["splits"]:
        got = module.results.get(split, {})
        per_split[split] = {t: got.get(t, {"n": 0, "unparseable": 0, "skipped": 0})
                            for t in parts["tasks"]}  # fmt: skip
    counts = {
        split: {
            t: {k: int(v.get(k, 0)) for k in ("n", "unparseable", "skipped")}
            for t, v in by_task.items()
        }
        for split, by_task in per_split.items()
    }
    flat = {
        f"{split}/{task}/{name}": value
        for split, by_task in per_split.items()
        for task, values in by_task.items()
        for name, value in values.items()
        if name != "ci95"
    }
    flat.update({
        f"{split}/{task}/{name}/ci95": ci
        for split, by_task in per_split.items()
        for task, values in by_task.items()
        for name, ci in (values.get("ci95") or {}).items()
    })  # fmt: skip
    baselines = {}
    if parts.get("baseline_reader") is not None:
        baselines["spatial_qa"] = spatial_qa_baselines(
            parts["baseline_reader"], dm, parts["splits"]
        )
    return {
        "checkpoint": parts["ckpt_path"],
        "protocol": protocol(cfg, parts["tasks"]),
        "splits": per_split,
        "counts": counts,
        "data_skips": dict(dm.skips.counts),
        "unavailable": dict(module.unavailable),
        "metrics": flat,
        **({"baselines": baselines} if baselines else {}),
    }


def write_outputs(cfg: DictConfig, parts: dict[str, Any], module: EvalModule, results) -> None:
    run_dir: Path = parts["run_dir"]
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    write_json(run_dir / "env.json", environment(cfg.paths.root_dir, int(cfg.seed)))
    write_json(run_dir / "results.json", results)
    (run_dir / "results.md").write_text(results_markdown(results))
    paths = write_predictions(run_dir / "predictions", module.predictions)
    skipped = {s: r for s, r in module.skipped.items() if r}
    if skipped:
        write_json(run_dir / "predictions" / "skipped.json", skipped)
    loggers = parts["trainer"].loggers
    images = cfg.get("wandb_table_images", 200)
    wandb_tables(loggers, module.predictions, cfg.get("wandb_table_rows"), images)
    wandb_pictures(loggers, module.picture_paths)
    for line in summary_lines(results):
        print(line)
    for reason in results["unavailable"].values():
        print(reason)
    print(f"predictions: {len(paths)} files in {run_dir / 'predictions'}")
    print(f"run folder: {run_dir}")
