"""Language-model cross entropy on answer tokens."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

IGNORE = -100


class LMLoss(nn.Module):
    """Next-token cross entropy: ``logits[:, t]`` predicts ``labels[:, t + 1]``.

    ``labels`` holds ``-100`` on prompt and padding positions, so only answer tokens count;
    the mean is over those tokens. A batch with no answer token gives a zero that still
    backpropagates. Returns ``{'lm', 'loss'}``.
    """

    def forward(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        if logits.shape[:2] != labels.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}"
            )
        pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        tgt = labels[:, 1:].reshape(-1)
        if (tgt != IGNORE).any():
            loss = F.cross_entropy(pred, tgt, ignore_index=IGNORE)
        else:
            loss = logits.sum() * 0.0
        return {"lm": loss, "loss": loss}
