"""What an evaluation reports: the protocol record, the Markdown table, W&B tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from scalar.data.tasks import PROMPTS
from scalar.data.tasks_spatial import SPATIAL_PROMPTS
from scalar.data.tasks_spatial3d import SPATIAL3D_PROMPTS
from scalar.metrics.bootstrap import LEVEL, count_for, is_figure

COORDINATES = (
    "xyxy pixels of the original image; textual format integers round(v*999) of "
    "coordinates normalised by image width/height"
)
# metric names shown x100 in results.md (fractions in results.json)
PERCENT = (
    "acc",
    "miou",
    "right_object",
    "right_object_miou",
    "right_object_acc@0.5",
    "precision",
    "recall",
    "f1",
    "bleu4",
    "meteor",
    "rouge_l",
    "cider",
    "spice",
)
COUNTS = ("n", "unparseable", "skipped", "mentions", "objects", "qual/n", "quant/n")
RULES = {
    "rec": "first predicted box vs the true box; Acc@t = share with IoU >= t; mIoU counts "
    "samples without a box as 0; no box = unparseable (a miss); where samples list their "
    "image's objects: right_object = share whose box overlaps the referent more than any "
    "other object, right_object_miou / right_object_acc@0.5 = how well those boxes fit",
    "roc": "exact match of the normalised output (lower case, no punctuation or articles) "
    "with the category name; empty output = unparseable (wrong); groups by prompt kind",
    "caption": "pycocoevalcap BLEU-4, METEOR, ROUGE-L, CIDEr(-D) on text tokenised by "
    "simple_tokenize (lower case, punctuation removed; no Java PTB tokenizer); "
    "empty output = unparseable",
    "spatial_qa": "qualitative: exact match of normalised text; quantitative: first number "
    "of the output, relative error |p-v|/max(|v|,1), acc = within [v/2, 2v]; no number = "
    "unparseable (wrong, relative error 1); metric 3-D answers (unit m): the number read "
    "with its unit (cm, feet, ...), relative error |p-v|/|v|; medre = median relative error",
    "grounded": "mentions = text before each box; a mention matches a true object when "
    "IoU >= 0.5 and the category name appears in it; one-to-one greedy matching by IoU; "
    "micro precision/recall/F1 over the split; no mention = unparseable",
}


def protocol(cfg: DictConfig, tasks: list[str]) -> dict[str, Any]:
    """How the numbers were produced (prompts, decoding, coordinates, sample selection)."""
    prompts: dict[str, Any] = {t: PROMPTS[t] for t in tasks if t in PROMPTS}
    if "spatial_qa" in tasks:
        prompts["spatial_qa"] = dict(SPATIAL_PROMPTS)
        prompts["spatial_qa_3d"] = {k: list(v) for k, v in SPATIAL3D_PROMPTS.items()}
    caps = (OmegaConf.to_container(cfg.data, resolve=True).get("splits") or {}).get("max_samples")
    return {
        "prompts": prompts,
        "prompt_format": "<s> prompt <sep>, then the answer; <region> = the visual prompt's "
        "soft tokens (box, point or mask)",
        "decoding": {
            "greedy": True,
            "do_sample": False,
            "num_beams": 1,
            "samples_per_prompt": 1,
            "max_new_tokens": int(cfg.max_new_tokens),
            "kv_cache": True,
        },  # fmt: skip
        "coordinates": COORDINATES,
        "full_split": not caps,
        "max_samples_per_split": caps,
        "iou_thresholds": list(cfg.iou_thresholds),
        "scores": "fractions in [0, 1] (CIDEr on its usual 0-10 scale); results.md shows them x100",
        "confidence_intervals": _ci_protocol(cfg),
        "rules": {t: RULES[t] for t in tasks},
        "unreadable_images": "left out and counted (skipped), never replaced by another sample",
    }


def _ci_protocol(cfg: DictConfig) -> dict[str, Any]:
    resamples = int(cfg.get("bootstrap_resamples") or 0)
    return {
        "level": LEVEL,
        "method": "percentile bootstrap over the split's samples (drawn with replacement; "
        "every figure recomputed per resample: corpus BLEU-4 and CIDEr-D from the resample's "
        "statistics, METEOR as the mean per-caption score); scalar.metrics.bootstrap",
        "resamples": resamples,
        "seed": int(cfg.get("bootstrap_seed") or 0),
        "field": "ci95: {figure: [low, high]} per task" if resamples else "none (0 resamples)",
    }


def _ci_line(proto: dict[str, Any]) -> str:
    ci = proto.get("confidence_intervals") or {}
    if not ci.get("resamples"):
        return ""
    return (f" Each score: value [{100 * ci['level']:g}% bootstrap interval] (n=samples), "
            f"{ci['resamples']} resamples, seed {ci['seed']}.")  # fmt: skip


def _cell(name: str, values: dict[str, Any]) -> str:
    """``81.25 [62.50, 93.75] (n=16)`` for a figure with an interval, else the value."""
    value = values.get(name)
    text = _fmt(name, value)
    ci = (values.get("ci95") or {}).get(name)
    if ci is not None and is_figure(name, value):
        text += f" [{_fmt(name, ci[0])}, {_fmt(name, ci[1])}] (n={count_for(name, values)})"
    return text


def _fmt(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name in COUNTS or name.endswith("/n"):
        return str(int(value))
    base = name.rsplit("/", 1)[-1]
    if base in PERCENT or base.startswith("acc@"):
        return f"{100 * float(value):.2f}"
    return f"{float(value):.4f}"


def _table(rows: list[tuple[str, dict[str, Any]]], names: list[str], first: str) -> list[str]:
    lines = [f"| {first} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(n, values) for n in names) + " |")
    return lines


def results_markdown(results: dict[str, Any]) -> str:
    """One table per task (rows: splits), then one per task for its groups."""
    out = [f"# Evaluation of `{results['checkpoint']}`", ""]
    proto = results["protocol"]
    out += [f"Greedy decoding, one fixed prompt per task, max {proto['decoding']['max_new_tokens']}"
            f" new tokens; {'full splits' if proto['full_split'] else 'capped splits: ' + json.dumps(proto['max_samples_per_split'])}."
            " Scores x100 (accuracies, mIoU, P/R/F1, BLEU-4, METEOR, ROUGE-L, CIDEr); "
            "mre / medre = mean / median relative error." + _ci_line(proto), f"Coordinates: {proto['coordinates']}.", ""]  # fmt: skip
    tasks = sorted({t for by_task in results["splits"].values() for t in by_task})
    for task in tasks:
        rows = [(s, by_task.get(task, {})) for s, by_task in results["splits"].items()]
        main = list(
            dict.fromkeys(
                k
                for _, v in rows
                for k in v
                if k != "ci95" and ("/" not in k or k.startswith(("qual/", "quant/")))
            )
        )
        out += [f"## {task}", "", *_table(rows, main, "split"), ""]  # fmt: skip
        groups = [(f"{s} / {g}", _group(v, g, main)) for s, v in rows for g in _groups(v)]
        if groups:
            names = list(dict.fromkeys(k for _, v in groups for k in v if k != "ci95"))
            out += [f"### {task} by group", "", *_table(groups, names, "split / group"), ""]
    for task, by_split in (results.get("baselines") or {}).items():
        rows = [(f"{s} / {b}", v) for s, figs in by_split.items() if s != "fit_on"
                for b, v in figs.items()]  # fmt: skip
        if rows:
            names = list(dict.fromkeys(k for _, v in rows for k in v))
            out += [f"## {task} baselines (fitted on the {by_split['fit_on']})", "",
                    *_table(rows, names, "split / baseline"), ""]  # fmt: skip
    if results.get("unavailable"):
        out += ["## Not reported", ""] + [f"- {m}" for m in results["unavailable"].values()] + [""]
    skips = results.get("data_skips") or {}
    if skips:
        out += ["## Skipped while reading", ""] + [f"- {k}: {v}" for k, v in sorted(skips.items())]
        out.append("")
    return "\n".join(out)


def _group(values: dict[str, Any], group: str, names: list[str]) -> dict[str, Any]:
    """The ``group/<name>`` figures of ``values`` as ``<name>``, with their intervals."""
    out = {m: values[f"{group}/{m}"] for m in names if f"{group}/{m}" in values}
    ci = values.get("ci95") or {}
    out["ci95"] = {m: ci[f"{group}/{m}"] for m in out if f"{group}/{m}" in ci}
    return out


def _groups(values: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(k.split("/", 1)[0] for k in values
                              if "/" in k and not k.startswith(("qual/", "quant/"))))  # fmt: skip


def summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for split, by_task in results["splits"].items():
        for task, values in by_task.items():
            shown = [f"{k}={_cell(k, values)}" for k in values if "/" not in k and k != "ci95"]
            lines.append(f"{split} {task}: " + " ".join(shown))
    return lines


def wandb_tables(
    loggers, predictions: dict, max_rows: int | None = None, max_images: int | None = 200
) -> int:
    """A ``eval/predictions/<task>_<split>`` table per task and split on W&B loggers; the
    first ``max_images`` rows of each (null: all) carry a ``wandb.Image`` thumbnail with the
    predicted, true and visual-prompt boxes in the ``picture`` column."""
    from lightning.pytorch.loggers import WandbLogger

    from scalar.core.pictures import wandb_thumbnail

    columns = ["id", "picture", "image", "prompt", "output", "boxes", "truth", "score"]
    n = 0
    for logger in loggers or []:
        if not isinstance(logger, WandbLogger):
            continue
        for split, by_task in predictions.items():
            for task, records in by_task.items():
                rows = records if max_rows is None else records[: int(max_rows)]
                if not rows:
                    continue
                shown = len(rows) if max_images is None else int(max_images)
                data = [[r["id"], wandb_thumbnail(r) if k < shown else None, r["image"],
                         r["prompt"], r["output"], json.dumps(r["boxes"]),
                         json.dumps(r["truth"], default=str), json.dumps(r["score"], default=str)]
                        for k, r in enumerate(rows)]  # fmt: skip
                logger.log_table(f"eval/predictions/{task}_{split}", columns=columns, data=data)
                n += 1
    return n


def wandb_pictures(loggers, paths) -> int:
    """The run folder's pictures (``<split>_<task>_<k>.png``) as W&B images under
    ``eval/pictures/<split>_<task>``; returns the number of keys logged."""
    from lightning.pytorch.loggers import WandbLogger
    from PIL import Image

    from scalar.core.pictures import same_size

    wandb_loggers = [lg for lg in loggers or [] if isinstance(lg, WandbLogger)]
    by_key: dict[str, list[Path]] = {}
    for path in paths if wandb_loggers else []:
        by_key.setdefault(Path(path).stem.rsplit("_", 1)[0], []).append(Path(path))
    for key, files in sorted(by_key.items()):
        images = []
        for f in files:
            with Image.open(f) as im:
                images.append(im.convert("RGB"))
        for logger in wandb_loggers:
            captions = [f.name for f in files]
            logger.log_image(f"eval/pictures/{key}", images=same_size(images), caption=captions)
    return len(by_key) * len(wandb_loggers)
