"""Checkpoint writing (atomic), locating (``ckpt_path=last``), reading, and the one weight
loader (:func:`load_weights`: eval.py, predict, ``init_from=`` and the benchmarks).

A checkpoint is a file, or a folder written by a sharded strategy: FSDP with
``state_dict_type=sharded`` writes a ``torch.distributed.checkpoint`` folder
(``.metadata``, ``*.distcp`` and Lightning's ``meta.pt``), which :func:`load_checkpoint_file`
merges in one process; DeepSpeed writes its own layout (``latest`` + ``checkpoint/``).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from scalar.core.errors import UserError

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
META = "meta.pt"  # Lightning's non-tensor part of a sharded checkpoint folder


def is_local(path: str) -> bool:
    """A path on this machine (plain, or ``file://``), not a remote URL."""
    return "://" not in path or path.startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside the target, then ``os.replace``.

    A crash or a full disk mid-write leaves the previous checkpoint intact and no
    partial file behind; the checkpoint is streamed to disk rather than buffered in
    memory first. Remote URLs use Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options!r}"
            )
        path = str(path)
        if not is_local(path):
            return super().save_checkpoint(checkpoint, path)
        path = path.removeprefix("file://")
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: follow the umask instead
            os.replace(tmp, path)
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            raise write_error(err, path, folder) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(err: BaseException, path: str, folder: str) -> BaseException:
    """torch reports a failed write as a RuntimeError of its zip writer: name the cause."""
    import errno
    import shutil

    if isinstance(err, OSError) or not isinstance(err, RuntimeError):
        return err
    if "write" not in str(err):
        return err
    free = shutil.disk_usage(folder).free
    if free < 64 * 2**20:  # under 64 MiB left: the disk is (nearly) full
        return OSError(errno.ENOSPC, "no space left on device", path)
    return OSError(errno.EIO, f"could not write the checkpoint ({str(err).splitlines()[0]})", path)


def clean_stale_tmp(folder: str | Path) -> list[Path]:
    """Remove partial checkpoint temp files (``.<name>.<random>.tmp``) a killed run left."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*.tmp") if p.is_file() and ".ckpt." in p.name]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# the magic number torch's legacy (non-zip) files start with, as pickled
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def check_checkpoint(path: str | Path, key: str = "checkpoint") -> None:
    """A cheap look at a checkpoint file before anything heavy is loaded.

    An empty file, a truncated zip, or a file that is neither a torch zip archive nor a
    pickle is a :class:`UserError` naming ``key`` and the file. Folders (sharded
    checkpoints) and remote URLs are left to their loaders.
    """
    import zipfile

    path = Path(str(path).removeprefix("file://"))
    if not is_local(str(path)) or path.is_dir():
        return
    if not path.is_file():
        raise UserError(f"{key}={path}: checkpoint not found")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{key}={path}: the checkpoint file is empty (0 bytes)")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"{key}={path}: not a readable checkpoint ({err})") from None
        if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            raise UserError(f"{key}={path}: a zip file but not a torch checkpoint (no data.pkl)")
        return
    with open(path, "rb") as f:
        head = f.read(32)
    if head.startswith(b"PK"):
        raise UserError(f"{key}={path}: truncated or corrupt checkpoint (incomplete zip archive)")
    if not (head.startswith(b"\x80") and _LEGACY_MAGIC in head):  # torch's pre-zip format
        raise UserError(f"{key}={path}: not a checkpoint file (neither a torch zip nor a pickle)")


def latest_run_checkpoint(runs_dir: Path, exclude: Path | None = None) -> Path | None:
    """``last.ckpt`` of the most recent run folder under ``runs_dir`` (names are timestamps)."""
    if not runs_dir.is_dir():
        return None
    exclude = exclude.resolve() if exclude is not None else None
    for run in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        if exclude is not None and run.resolve() == exclude:
            continue
        cand = run / CKPT_DIR / LAST
        if is_checkpoint(cand):
            return cand
    return None


def is_sharded(path: Path) -> bool:
    """A ``torch.distributed.checkpoint`` folder (FSDP ``state_dict_type=sharded``)."""
    return path.is_dir() and (path / ".metadata").is_file()


def is_deepspeed(path: Path) -> bool:
    """A DeepSpeed checkpoint folder (``latest`` tag file and ``checkpoint/`` states)."""
    return path.is_dir() and (path / "latest").is_file() and (path / "checkpoint").is_dir()


def is_checkpoint(path: Path) -> bool:
    """A checkpoint file, or a sharded FSDP or DeepSpeed checkpoint folder."""
    return path.is_file() or is_sharded(path) or is_deepspeed(path)


def resolve_ckpt_path(value: str | None, run_dir: Path, runs_dir: Path) -> str | None:
    """Turn ``ckpt_path`` into a checkpoint (file or sharded folder), or ``None``.

    ``last``: this run's ``checkpoints/last.ckpt`` if it exists, else the newest run of
    the same task that has one (a file or a sharded folder). A sharded FSDP / DeepSpeed
    folder: itself. Another directory: its ``checkpoints/last.ckpt`` (or ``last.ckpt``).
    A file: itself. Anything that does not exist is a :class:`UserError`.
    """
    if value in (None, "", "null", "none", "None"):
        return None
    value = str(value)
    if value == "last":
        own = run_dir / CKPT_DIR / LAST
        found = own if is_checkpoint(own) else latest_run_checkpoint(runs_dir, exclude=run_dir)
        if found is None:
            raise UserError(
                f"ckpt_path=last: no {CKPT_DIR}/{LAST} in {run_dir} or any run under {runs_dir}"
            )
        return str(found)
    if not is_local(value):
        return value
    path = Path(value.removeprefix("file://")).expanduser()
    if path.is_dir():
        if is_sharded(path) or is_deepspeed(path):  # sharded checkpoints are folders
            return str(path)
        for cand in (path / CKPT_DIR / LAST, path / LAST):
            if is_checkpoint(cand):
                return str(cand)
        raise UserError(f"checkpoint not found: no {CKPT_DIR}/{LAST} in {path}")
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return str(path)


def load_sharded(folder: str | Path, weights: bool = True) -> dict[str, Any]:
    """A sharded FSDP checkpoint folder as one Lightning checkpoint dict, on the CPU.

    The shards are merged by ``dcp_to_torch_save`` in this process (no process group, no
    GPU). Lightning's layout (``model`` and ``optimizer_<i>`` in the shards, the rest in
    ``meta.pt``) becomes a regular checkpoint: ``state_dict``, ``optimizer_states`` and
    the ``meta.pt`` entries. ``weights=False`` reads only ``meta.pt``.
    """
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    src = Path(folder)
    if not is_sharded(src):
        raise UserError(f"not a sharded checkpoint folder (no .metadata): {src}")
    meta = src / META
    ckpt = torch.load(meta, map_location="cpu", weights_only=False) if meta.is_file() else {}
    if not weights:
        return ckpt
    with tempfile.TemporaryDirectory() as tmp:
        merged_file = Path(tmp) / "merged.pt"
        dcp_to_torch_save(str(src), str(merged_file))
        merged = torch.load(merged_file, map_location="cpu", weights_only=False)
    if not meta.is_file() or "model" not in merged:  # not Lightning's layout: as saved
        return merged
    ckpt["state_dict"] = merged.pop("model")
    optim = sorted((k for k in merged if k.startswith("optimizer_")), key=lambda k: int(k[10:]))
    ckpt["optimizer_states"] = [merged.pop(k) for k in optim]
    ckpt.update(merged)  # anything else saved in the shards
    return ckpt


def load_checkpoint_file(path: str | Path, weights: bool = True) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (memory-mapped when possible).

    A sharded FSDP folder is merged (:func:`load_sharded`; ``weights=False`` reads only
    its metadata); a DeepSpeed folder is a :class:`UserError` naming the converter.
    """
    path = Path(path)
    if is_sharded(path):
        return load_sharded(path, weights)
    if is_deepspeed(path):
        raise UserError(
            f"{path} is a DeepSpeed checkpoint folder: convert it to one file with "
            "lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict"
        )
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    check_checkpoint(path)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError:  # not a zip-format file: plain load
            return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise UserError(f"cannot read checkpoint {path}: {first}") from None


def load_weights(
    model: torch.nn.Module,
    ckpt: Mapping[str, Any] | str | Path,
    path: str | Path | None = None,
    *,
    key: str = "ckpt",
    prefix: str = "model.",
) -> int:
    """Copy the ``prefix``-ed weights of ``ckpt`` into ``model`` (strict); returns a count.

    ``ckpt`` is a loaded checkpoint (``path`` names it in messages) or a checkpoint path
    (a file or a sharded folder). A model with a tokenizer must have the checkpoint's
    (its recorded fingerprint). No ``prefix``-ed weights, missing or unexpected keys are a
    :class:`UserError` naming ``key=path`` and a few of the keys.
    """
    if isinstance(ckpt, str | Path):
        path, ckpt = ckpt, load_checkpoint_file(ckpt)
    where = f"{key}={path}"
    if getattr(model, "tokenizer", None) is not None:
        from scalar.train.tokenizer_record import check_tokenizer  # it imports this module

        check_tokenizer(model.tokenizer, ckpt, str(path), key)
    state = ckpt.get("state_dict", ckpt)
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise UserError(f"{where}: no '{prefix}*' weights in the checkpoint")
    result = model.load_state_dict(weights, strict=False)
    miss, extra = result.missing_keys, result.unexpected_keys
    if miss or extra:
        raise UserError(
            f"{where}: weights do not match the model ({len(miss)} missing e.g. {miss[:3]}, "
            f"{len(extra)} unexpected e.g. {extra[:3]}); check the model.* settings"
        )
    return len(weights)
