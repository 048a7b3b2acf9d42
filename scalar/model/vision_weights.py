"""Loading a vision tower's weights from a local file, with one clear error when they do not fit.

Accepted: a full open_clip / CLIP state dict (``visual.*`` keys, the text tower is
ignored), a visual-only state dict (the tower's own keys), either wrapped in
``{"state_dict": ...}`` and with or without DDP's ``module.`` prefix. Anything else (not a
checkpoint, another architecture, missing weights) is one line naming the file, what
``model.vision.name`` expects and what the file holds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _fail(path, name: str, found: str) -> ValueError:
    return ValueError(
        f"vision weights {path} do not fit model.vision.name={name!r}: expected an open_clip "
        f"{name} checkpoint (full CLIP or visual-only state dict, optionally wrapped in "
        f"'state_dict'), found {found} (set model.vision.name to the file's architecture)"
    )


def read_state(path: str | Path, name: str) -> tuple[dict, str]:
    """``(visual state dict, kind)`` of the file; kind is ``full CLIP`` or ``visual-only``."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: pickle, zip, weights_only errors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        found = f"a file torch.load cannot read ({type(err).__name__}: {first})"
        raise _fail(path, name, found) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise _fail(path, name, f"a {type(obj).__name__} that is not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    return (visual, "full CLIP") if visual else (state, "visual-only")


def _shape(t) -> str:
    return "x".join(str(s) for s in t.shape)


def load_tower_weights(clip: nn.Module, path: str | Path, name: str) -> int:
    """Load the file's tower weights into ``clip.visual`` (strict); returns the tensor count."""
    state, kind = read_state(path, name)
    expected = clip.visual.state_dict()
    pos = "positional_embedding"
    if pos in state and pos in expected and state[pos].shape != expected[pos].shape:
        from open_clip.model import resize_pos_embed  # another input size: interpolate

        full = {f"visual.{pos}": state[pos]}
        resize_pos_embed(full, clip)
        state[pos] = full[f"visual.{pos}"]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    missing = [k for k in expected if k not in state]
    if wrong:
        k = wrong[0]
        raise _fail(path, name, f"a {kind} state dict whose {k} is {_shape(state[k])} where "
                    f"{name} has {_shape(expected[k])} ({len(wrong)} tensors differ)")  # fmt: skip
    if missing:
        raise _fail(path, name, f"a {kind} state dict without {len(missing)} of the tower's "
                    f"{len(expected)} tensors (e.g. {missing[0]})")  # fmt: skip
    clip.visual.load_state_dict({k: state[k] for k in expected}, strict=True)
    return len(expected)
