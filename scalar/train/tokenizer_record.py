"""One tokenizer per run: the model's. Shared with the data, saved in the run folder,
recorded in checkpoints and checked wherever a checkpoint's weights are loaded.

The record (``checkpoint['scalar']['tokenizer']``) is the tokenizer's directory, size,
special-token roles and a SHA-256 of its vocabulary; two tokenizers with the same hash map
every token to the same id, which is all the embedding rows of a checkpoint depend on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from scalar.core.errors import UserError

log = logging.getLogger(__name__)
TOKENIZER_DIR = "tokenizer"  # the run folder's copy of the run's tokenizer
ROLES = ("bos_token", "eos_token", "pad_token", "unk_token")


def fingerprint(tok) -> dict[str, Any]:
    """``{path, size, roles, sha256}`` of a tokenizer (see the module docstring)."""
    vocab = json.dumps(sorted(tok.get_vocab().items()), ensure_ascii=False)
    roles = {r: getattr(tok, r, None) for r in ROLES}
    blob = (vocab + json.dumps(roles, sort_keys=True)).encode()
    return {"path": str(getattr(tok, "name_or_path", "")), "size": len(tok), "roles": roles,
            "sha256": hashlib.sha256(blob).hexdigest()}  # fmt: skip


def _describe(record: dict) -> str:
    return f"{record.get('path') or '?'} ({record.get('size')} tokens)"


def share_tokenizer(model: Any, datamodule: Any) -> None:
    """Give ``datamodule`` the model's tokenizer; a different one configured for the data
    (``data.tokenizer_path`` or a tokenizer object) is one clear error."""
    tok = getattr(model, "tokenizer", None)
    if tok is None or not hasattr(datamodule, "tokenizer"):
        return
    theirs = datamodule.tokenizer
    path = getattr(datamodule, "tokenizer_path", None)
    same_dir = path and Path(path).resolve() == Path(str(tok.name_or_path)).resolve()
    if theirs is None and path and not same_dir and Path(path).is_dir():
        from scalar.core.tokenizer import load_tokenizer

        theirs = load_tokenizer(path)
    if theirs is not None and theirs is not tok:
        mine, other = fingerprint(tok), fingerprint(theirs)
        if mine["sha256"] != other["sha256"]:
            raise UserError(
                f"the data would be tokenized with {_describe(other)} but the model embeds "
                f"{_describe(mine)}: one run has one tokenizer, the model's "
                "(drop the data.tokenizer_path override; the data configs read model.tokenizer_path)"
            )
    datamodule.tokenizer = tok


def save_tokenizer(tok: Any, run_dir: Path) -> Path:
    """Write the run's tokenizer to ``<run_dir>/tokenizer`` (loadable by ``load_tokenizer``)."""
    out = Path(run_dir) / TOKENIZER_DIR
    tok.save_pretrained(str(out))
    return out


def check_tokenizer(tok: Any, ckpt: dict, path: str, what: str = "ckpt") -> None:
    """The checkpoint's weights must meet the tokenizer they were trained with."""
    record = (ckpt.get("scalar") or {}).get("tokenizer")
    if not record:
        log.warning("%s=%s records no tokenizer (an older checkpoint): not checked", what, path)
        return
    mine = fingerprint(tok)
    if mine["sha256"] != record.get("sha256"):
        run_copy = Path(path).parent.parent / TOKENIZER_DIR
        hint = f"model.tokenizer_path={run_copy}" if run_copy.is_dir() else "the training tokenizer"
        raise UserError(
            f"{what}={path} was trained with tokenizer {_describe(record)}, but this model "
            f"loads {_describe(mine)} with different ids: use {hint}"
        )
