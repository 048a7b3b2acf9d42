"""Turn a sharded FSDP checkpoint folder into one ``torch.save`` file.

``python scripts/consolidate_fsdp.py CKPT_DIR OUT.ckpt [--model-only]``

``CKPT_DIR`` is a ``torch.distributed.checkpoint`` folder (``.metadata`` + ``*.distcp``),
as written by Lightning's ``FSDPStrategy(state_dict_type="sharded")``: entries ``model``
and ``optimizer_<i>``, plus ``meta.pt`` with the rest of the Lightning checkpoint. The
shards are merged in this one process (no GPU, no process group) by
:func:`scalar.train.checkpoint.load_sharded`; a Lightning folder becomes a regular
Lightning checkpoint (``state_dict``, ``optimizer_states`` and the ``meta.pt`` entries).
``ckpt_path=``, ``init_from=`` and ``eval.py ckpt=`` also read the folder itself (they
merge it the same way); one file is quicker to load again and to copy.
``--model-only`` drops the optimizer state (a weights file for evaluation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scalar.core.errors import UserError  # noqa: E402
from scalar.train.checkpoint import load_sharded  # noqa: E402


def consolidate(ckpt_dir: str | Path, out: str | Path, model_only: bool = False) -> dict[str, Any]:
    """Merge the shards of ``ckpt_dir`` into ``out``; returns the saved dict."""
    ckpt = load_sharded(ckpt_dir)
    if model_only:
        ckpt = {k: v for k, v in ckpt.items() if not k.startswith("optim")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    torch.save(ckpt, tmp_out)
    tmp_out.replace(out)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt_dir", help="sharded checkpoint folder")
    parser.add_argument("out", help="output file (.ckpt)")
    parser.add_argument("--model-only", action="store_true", help="drop optimizer state")
    args = parser.parse_args(argv)
    try:
        ckpt = consolidate(args.ckpt_dir, args.out, args.model_only)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = len(ckpt.get("state_dict", ckpt))
    print(f"wrote {args.out} ({n} model entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
