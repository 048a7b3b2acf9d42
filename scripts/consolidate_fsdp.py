"""Turn a sharded FSDP checkpoint folder into one ``torch.save`` file.

``python scripts/consolidate_fsdp.py CKPT_DIR OUT.ckpt [--model-only]``

``CKPT_DIR`` is a ``torch.distributed.checkpoint`` folder (``.metadata`` + ``*.distcp``),
as written by Lightning's ``FSDPStrategy(state_dict_type="sharded")``: entries ``model``
and ``optimizer_<i>``, plus ``meta.pt`` with the rest of the Lightning checkpoint. The
shards are merged with ``dcp_to_torch_save`` in this one process (no GPU, no process
group); a Lightning folder becomes a regular Lightning checkpoint (``state_dict``,
``optimizer_states`` and the ``meta.pt`` entries), which ``ckpt_path=`` / ``init_from=``
read. ``--model-only`` drops the optimizer state (a weights file for evaluation).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

META = "meta.pt"  # Lightning's non-tensor part of a sharded checkpoint


def consolidate(ckpt_dir: str | Path, out: str | Path, model_only: bool = False) -> dict[str, Any]:
    """Merge the shards of ``ckpt_dir`` into ``out``; returns the saved dict."""
    src = Path(ckpt_dir)
    if not (src / ".metadata").is_file():
        raise FileNotFoundError(f"not a sharded checkpoint folder (no .metadata): {src}")
    with tempfile.TemporaryDirectory() as tmp:
        merged_file = Path(tmp) / "merged.pt"
        dcp_to_torch_save(str(src), str(merged_file))
        merged = torch.load(merged_file, map_location="cpu", weights_only=False)
    if (src / META).is_file() and "model" in merged:  # Lightning's layout
        ckpt = torch.load(src / META, map_location="cpu", weights_only=False)
        ckpt["state_dict"] = merged.pop("model")
        optim = sorted((k for k in merged if k.startswith("optimizer_")), key=lambda k: int(k[10:]))
        if not model_only:
            ckpt["optimizer_states"] = [merged[k] for k in optim]
        for key in optim:
            merged.pop(key)
        ckpt.update(merged)  # anything else saved in the shards
    else:
        ckpt = {k: v for k, v in merged.items() if not (model_only and k.startswith("optim"))}
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
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = len(ckpt.get("state_dict", ckpt))
    print(f"wrote {args.out} ({n} model entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
