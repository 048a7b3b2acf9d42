"""One teacher-forced pass of sampled text rows: token log-probabilities, the entropy and
varentropy of each row's next-token distributions, and the box actions of ``<box>`` rows.

Box actions: when a sampled answer holds a ``<box>`` trigger, the box it stands for is a
decision of the spatial decoder, not of the token head. Like a grounding row
(:mod:`scalar.rl.grounding`), the first ``<box>`` of such an answer is made an action:
a cell drawn from the decoder's attention over the patch grid
(``softmax(logits / ground_temperature)``) and a Gaussian geometry around the decoder's
offset and size. The sampled box replaces the greedy one in the generation (the rewards
score it) and its log-probability is one more column of the row's log-probabilities, so
that a box reward (IoU) moves the decoder's attention, offset and size heads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from scalar.rewards.entropy import entropy_regulariser
from scalar.rl.grounding import geometry_logprob, placed_boxes, sample_geometry
from scalar.rl.rollout import completion_batch, completion_mask


@dataclass
class BoxActions:
    """The sampled box of each row whose answer holds a ``<box>`` trigger."""

    rows: Tensor  # [M] rows with a box action
    cells: Tensor  # [M] sampled grid cells
    taken: tuple[Tensor, Tensor]  # sampled (offset, log_size) [M, 2]
    boxes: Tensor  # [M, 4] placed boxes in [0, 1]


def first_box_triggers(out: Mapping[str, Any], prompt_width: int, n: int) -> tuple[Tensor, Tensor]:
    """``(rows [M], trigger index [M])``: each row's first ``<box>`` of its completion (the
    pass's triggers are in row-major order; point triggers and prompt triggers are not)."""
    rows = out["box_batch"]
    if not len(rows):
        return rows, rows
    first: dict[int, int] = {}
    kinds = out["box_kind"].tolist()
    cols = out.get("box_cols")
    for k, r in enumerate(rows.tolist()):
        late = cols is None or int(cols[k]) >= prompt_width
        if kinds[k] == 0 and late and r not in first:
            first[r] = k
    keep = sorted(first)
    dev = rows.device
    return torch.tensor(keep, dtype=torch.long, device=dev), torch.tensor(
        [first[r] for r in keep], dtype=torch.long, device=dev
    )


def _box_cols(model, full: Mapping[str, Any]) -> Tensor:
    """Column of every trigger of the pass (the order of ``box_batch``)."""
    trig = model.trigger_mask(full["input_ids"]) & full["attention_mask"].bool()
    return trig.nonzero(as_tuple=True)[1]


def policy_pass(
    model, batch: Mapping[str, Any], tokens: Tensor, lengths: Tensor, temperature: float,
    entropy: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """``logp [N, L]`` and ``mask`` of ``tokens`` after each prompt (``log_softmax(logits /
    temperature)``), with ``entropy`` / ``varentropy [N]`` (nats, mean over the row's
    tokens) when asked, and the pass's output ``out`` (box heads) with each trigger's
    column. Gradients flow when called outside ``no_grad``."""
    full = completion_batch(batch, tokens, lengths)
    out = model(full)
    out["box_cols"] = _box_cols(model, full)
    p, steps = batch["prompt_input_ids"].shape[1], tokens.shape[1]
    pred = out["logits"][:, p - 1 : p - 1 + steps].float() / float(temperature)
    mask = completion_mask(tokens, lengths)
    lp = pred.log_softmax(-1).gather(-1, tokens[..., None].clamp(min=0)).squeeze(-1) * mask
    res = {"logp": lp, "mask": mask, "out": out, "prompt_width": p}
    if entropy:
        res["entropy"], res["varentropy"] = entropy_regulariser(pred, mask)
    return res


def _cell_size(out: Mapping[str, Any]) -> tuple[float, float]:
    h, w = out["grid_hw"]
    return 1.0 / w, 1.0 / h


@torch.no_grad()
def sample_box_actions(
    pas: Mapping[str, Any], n: int, stds: tuple[float, float], temperature: float,
    generator: torch.Generator | None = None,
) -> BoxActions | None:  # fmt: skip
    """Sample the box action of every row with a completion ``<box>`` (``None``: no row has
    one) from a :func:`policy_pass` output ``pas`` of ``n`` rows."""
    out = pas["out"]
    rows, ks = first_box_triggers(out, pas["prompt_width"], n)
    if not len(rows):
        return None
    logp = (out["box_attn_logits"][ks].float() / float(temperature)).log_softmax(-1)
    cells = torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]
    offset = out["box_offset"][ks].float()
    log_size = out["box_size"][ks].float().clamp_min(1e-6).log()
    taken = sample_geometry(offset, log_size, stds, _cell_size(out), generator)
    return BoxActions(rows, cells, taken, placed_boxes(cells, *taken, out["grid_hw"]))


def box_action_logp(
    pas: Mapping[str, Any], actions: BoxActions, stds: tuple[float, float], temperature: float
) -> Tensor:
    """Log-probability ``[M]`` of ``actions`` under the box heads of the pass ``pas``
    (the same triggers: the pass is of the same tokens)."""
    out = pas["out"]
    rows, ks = first_box_triggers(out, pas["prompt_width"], len(pas["logp"]))
    if not torch.equal(rows.cpu(), actions.rows.cpu()):
        raise ValueError("box actions were sampled from other rows than this pass's <box> rows")
    logp = (out["box_attn_logits"][ks].float() / float(temperature)).log_softmax(-1)
    cell = logp.gather(1, actions.cells[:, None])[:, 0]
    offset = out["box_offset"][ks].float()
    log_size = out["box_size"][ks].float().clamp_min(1e-6).log()
    return cell + geometry_logprob(offset, log_size, actions.taken, stds, _cell_size(out))


def with_action_column(logp: Tensor, mask: Tensor, actions: BoxActions | None, col: Tensor | None):
    """``[N, L] -> [N, L + 1]``: the box action's log-probability as one more column
    (mask 1 on rows with an action); unchanged without actions."""
    if actions is None:
        return logp, mask
    extra = logp.new_zeros(len(logp), 1).index_put((actions.rows, torch.zeros_like(actions.rows)),
                                                   col.to(logp.dtype))  # fmt: skip
    m = mask.new_zeros(len(mask), 1)
    m[actions.rows] = 1
    return torch.cat([logp, extra], 1), torch.cat([mask, m], 1)


def place_sampled_boxes(gen: dict, actions: BoxActions | None) -> None:
    """Put each action's box first in its row's ``gen["boxes"]`` (what the rewards read)."""
    if actions is None:
        return
    boxes = [list(b) for b in gen["boxes"]]
    for r, box in zip(actions.rows.tolist(), actions.boxes.tolist()):
        boxes[r] = [tuple(box)] + boxes[r][1:]
    gen["boxes"] = boxes
