"""Spatial-QA baselines beside a model's scores in eval.py's results.

The training split's spatial-QA samples (built as training builds them) fit the answers
of ``scalar.metrics.spatial_baselines`` (a constant answer per answer kind; the training
prior per question type), which are then scored on exactly the evaluated samples.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def train_reader(cfg: DictConfig) -> Any:
    """The training split's reader spec, resolved (before eval narrows ``data.corpora``);
    None when the data has no train split or the baselines are off."""
    corpora = cfg.data.get("corpora") or {}
    if not cfg.get("spatial_baselines", True) or corpora.get("train") is None:
        return None
    return OmegaConf.to_container(corpora.train, resolve=True)


def spatial_qa_baselines(spec: Any, datamodule, splits: list[str]) -> dict[str, Any]:
    """``{"fit_on": ..., split: {"constant": figures, "prior": figures}}``; only
    ``fit_on`` (saying why) when the train split cannot be read or has no such samples."""
    from hydra.utils import instantiate

    from scalar.data.merge import read_all
    from scalar.data.tasks import TaskBuilder
    from scalar.metrics.spatial_baselines import fit_prior, score_baselines

    try:
        corpus = read_all(instantiate(spec))
    except (FileNotFoundError, ValueError) as e:  # e.g. an eval-only layout without train files
        return {"fit_on": f"unavailable: the train split could not be read ({e})"}
    builder = TaskBuilder(["spatial_qa"], seed=datamodule.seed,
                          max_spatial_pairs=datamodule.max_spatial_pairs)  # fmt: skip
    train = builder.build_all(corpus.scenes)
    if not train:
        return {"fit_on": "train split: no spatial_qa samples"}
    fit = fit_prior([s.target for s in train], [s.meta for s in train])
    out: dict[str, Any] = {"fit_on": f"train split ({len(train)} spatial_qa samples)"}
    for split in splits:
        samples = [s for s in datamodule.samples.get(split) or [] if s.task == "spatial_qa"]
        if samples:
            scores = score_baselines(fit, [s.target for s in samples], [s.meta for s in samples])
            out[split] = {b: {k: v for k, v in figs.items()
                              if "/" not in k or k.startswith(("qual/", "quant/"))}
                          for b, figs in scores.items()}  # fmt: skip
    return out
