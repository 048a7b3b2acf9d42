"""What a run records about its environment: package versions, git commit, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch",
    "lightning",
    "hydra-core",
    "omegaconf",
    "transformers",
    "open_clip_torch",
    "torchmetrics",
    "wandb",
    "tokenizers",
    "peft",
    "numpy",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: str | Path) -> str | None:
    """HEAD commit of the repository at ``root`` (with ``+dirty`` for local changes)."""
    try:
        run = dict(cwd=str(root), capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [],
    }
    if torch.cuda.is_available():
        info["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
        info["cuda_version"] = torch.version.cuda
    return info


def environment(root: str | Path, seed: int | None) -> dict[str, Any]:
    """Everything ``env.json`` holds."""
    return {
        "versions": package_versions(),
        "git_commit": git_commit(root),
        "seed": seed,
        "hardware": hardware(),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
    }
