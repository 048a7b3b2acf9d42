"""Which checkpoint a resume continues, and whether it may: ``resolve_resume(cfg, ...)``.

``ckpt_path=last`` looks, newest first, at this run's and then the other runs' of the
same task (``logs/<task_name>/runs``) ``checkpoints/last.ckpt`` and takes the newest one
whose saved config is compatible with this run's:

* the stage (``stage.name``) and the model (``model.*``) must be equal: a different
  model cannot continue another's optimizer state (start from its weights with
  ``init_from=`` instead);
* any other difference outside ``RESUME_FREE`` (where the run is written, loggers,
  callbacks, step and time budgets, ...) is listed in one line and refused unless
  ``resume.allow_config_change=true``.

An explicit checkpoint (``ckpt_path=<file|run folder>``) gets the same check. Nothing to
resume, or nothing compatible, is one error line (:class:`UserError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from scalar.train.checkpoint import (
    CKPT_DIR,
    LAST,
    UserError,
    check_checkpoint,
    is_checkpoint,
    is_deepspeed,
    load_checkpoint_file,
    resolve_ckpt_path,
)

# config keys (and key prefixes) a resumed run may change freely
RESUME_FREE = (
    "paths",
    "ckpt_path",
    "resume",
    "logger",
    "callbacks",
    "train",
    "validate",
    "test",
    "tags",
    "init_from",
    "optimized_metric",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.max_epochs",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.num_sanity_val_steps",
    "data.loader.num_workers",
)
FIXED = ("stage.name", "model")  # never resumable across a change of these


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}`` (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) and value else {name: value})
    return out


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _relocated(value: Any, old: str, new: str) -> Any:
    """Values naming the old run folder (picture_dir, dirpath, ...) as if in the new one."""
    if isinstance(value, str) and old and old in value:
        return value.replace(old, new)
    if isinstance(value, list):
        return [_relocated(v, old, new) for v in value]
    return value


def differences(saved: dict, current: dict) -> tuple[list[str], list[str]]:
    """``(fixed, other)``: ``key: saved -> current`` lines that differ, outside RESUME_FREE."""
    old_dir = str((saved.get("paths") or {}).get("output_dir") or "")
    new_dir = str((current.get("paths") or {}).get("output_dir") or "")
    a, b = flatten(saved), flatten(current)
    fixed, other = [], []
    for key in sorted(set(a) | set(b)):
        if _under(key, RESUME_FREE):
            continue
        was, now = _relocated(a.get(key), old_dir, new_dir), b.get(key)
        if was != now:
            (fixed if _under(key, FIXED) else other).append(f"{key}: {was!r} -> {now!r}")
    return fixed, other


def saved_config(path: str) -> dict | None:
    """The resolved config a checkpoint was written with (``None`` when it has none)."""
    if is_deepspeed(Path(path)):
        return None
    meta = load_checkpoint_file(path, weights=False)
    return (meta.get("scalar") or {}).get("config") or None


def refusal(path: str, current: dict, allow_change: bool) -> str | None:
    """Why ``path`` cannot be resumed by a run of ``current`` config, or ``None``."""
    saved = saved_config(path)
    if saved is None:
        return None  # written outside this application: nothing to compare with
    fixed, other = differences(saved, current)
    if fixed:
        head = "; ".join(fixed[:3]) + (f"; ... ({len(fixed)} in all)" if len(fixed) > 3 else "")
        return (
            f"cannot resume {path}: its stage or model differs ({head}); "
            "start from its weights with init_from= instead"
        )
    if other and not allow_change:
        head = "; ".join(other[:4]) + (f"; ... ({len(other)} in all)" if len(other) > 4 else "")
        return (
            f"cannot resume {path}: its config differs ({head}); "
            "set resume.allow_config_change=true to resume it anyway"
        )
    return None


def candidates(run_dir: Path, runs_dir: Path) -> list[Path]:
    """``last.ckpt`` of this run, then of every other run of the task, newest first."""
    found = []
    own = run_dir / CKPT_DIR / LAST
    if is_checkpoint(own):
        found.append(own)
    if runs_dir.is_dir():
        runs = sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True)
        for run in runs:
            cand = run / CKPT_DIR / LAST
            if run.resolve() != run_dir.resolve() and is_checkpoint(cand):
                found.append(cand)
    return found


def resolve_resume(cfg: DictConfig, run_dir: Path, runs_dir: Path) -> str | None:
    """The checkpoint ``cfg.ckpt_path`` resumes (checked as above), or ``None``."""
    value = cfg.get("ckpt_path")
    if value in (None, "", "null", "none", "None"):
        return None
    current = OmegaConf.to_container(cfg, resolve=True)
    allow = bool(OmegaConf.select(cfg, "resume.allow_config_change", default=False))
    if str(value) != "last":
        path = resolve_ckpt_path(str(value), run_dir, runs_dir)
        if path is not None and "://" not in path:
            check_checkpoint(path, "ckpt_path")
            problem = refusal(path, current, allow)
            if problem:
                raise UserError(problem)
        return path
    found = candidates(run_dir, runs_dir)
    if not found:
        raise UserError(
            f"ckpt_path=last: nothing to resume: no {CKPT_DIR}/{LAST} in any run of task "
            f"'{cfg.get('task_name')}' under {runs_dir}"
        )
    first = None
    for path in found:
        check_checkpoint(path, "ckpt_path")
        problem = refusal(str(path), current, allow)
        if problem is None:
            return str(path)
        first = first or problem
    raise UserError(f"ckpt_path=last: no compatible run ({len(found)} checked); newest: {first}")
