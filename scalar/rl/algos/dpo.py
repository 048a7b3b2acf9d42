"""DPO: preference pairs of sampled answers, ``-log sigmoid(beta * margin)``.

Text rows: the best and the worst of G sampled completions (ranked by ``score_terms``),
the best refined first: its first tokens (up to the first box / point trigger, at most
``refine_fraction`` of them; ``refine=objects``: up to its first category name, so that its
object phrases are regenerated) are kept and the rest resampled; the better of the refined
and the original best is the chosen answer. Grounding rows: the best against the worst
sampled box (no refinement).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from scalar.rewards.mentions import mentioned_names
from scalar.rl.advantages import dpo_loss
from scalar.rl.algos.base import Algorithm, PairBatch, Step
from scalar.rl.grounding import action_logprob
from scalar.rl.rollout import extend_prompts, take_rows
from scalar.rl.sampling import GroundRollout, RolloutContext


def pad_tokens(rows: Sequence[Sequence[int]], pad_id: int, device=None) -> tuple[Tensor, Tensor]:
    """Token lists -> ``(tokens [N, L] padded with pad_id, lengths [N])``."""
    width = max([len(r) for r in rows] + [1])
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out.to(device), torch.tensor([len(r) for r in rows], device=device)


def decode(model, ids: Sequence[int]) -> str:
    """Token ids -> text, keeping the box and point triggers (other specials dropped)."""
    tok = model.tokenizer
    strip = set(tok.all_special_ids) - {model.box_id, model.point_id}
    return tok.decode([i for i in ids if i not in strip], skip_special_tokens=False)


def object_cut(decode_fn, ids: Sequence[int], names: Sequence[str], fallback: int) -> int:
    """Where the first category name of ``decode_fn(ids)`` starts (in tokens): the prefix
    kept when a description's object phrases are regenerated; ``fallback`` when it names
    none."""
    for end in range(1, len(ids) + 1):
        if mentioned_names(decode_fn(ids[:end]), names):
            start = end - 1
            while start > 0 and not mentioned_names(decode_fn(ids[start:end]), names):
                start -= 1
            return start
    return fallback


def content(gen: dict, j: int) -> list[int]:
    """The generated tokens of row ``j`` (up to its length)."""
    return gen["tokens"][j, : int(gen["lengths"][j])].tolist()


@dataclass
class DPO(Algorithm):
    """``beta``: DPO temperature; ``score_terms``: reward terms summed to rank text samples
    (the weighted total where none applies); ``refine_fraction``: share of the best
    sample's tokens kept as the refinement prefix."""

    name: ClassVar[str] = "dpo"
    min_group: ClassVar[int] = 2
    beta: float = 0.1
    score_terms: Sequence[str] = ("semantic", "localization")
    refine_fraction: float = 0.5
    score_weights: Sequence[float] | None = None  # one per score term (None: all 1)
    refine: str = "prefix"  # prefix: keep refine_fraction of the tokens | objects: cut before the first object name

    def __post_init__(self):
        self.score_terms = tuple(self.score_terms)
        if self.refine not in ("prefix", "objects"):
            raise ValueError(f"rl.algo.refine must be prefix or objects, got {self.refine!r}")
        if self.score_weights is not None:
            self.score_weights = tuple(float(w) for w in self.score_weights)
            if len(self.score_weights) != len(self.score_terms):
                raise ValueError(f"rl.algo.score_weights: one per score term {self.score_terms}, "
                                 f"got {list(self.score_weights)}")  # fmt: skip
        if not 0.0 <= float(self.refine_fraction) <= 1.0:
            raise ValueError(
                f"rl.algo.refine_fraction must be in [0, 1], got {self.refine_fraction}"
            )

    def loss(self, pairs: PairBatch) -> dict[str, Tensor]:
        """``-mean log sigmoid(beta [(pi_c - ref_c) - (pi_r - ref_r)])``, ``margin``, ``accuracy``."""
        loss, stats = dpo_loss(pairs.chosen, pairs.rejected, pairs.ref_chosen,
                               pairs.ref_rejected, self.beta)  # fmt: skip
        return {"loss": loss, **stats}

    def rank(self, terms, applies, total) -> np.ndarray:
        """Per sample: the ``score_weights``-weighted sum of ``score_terms`` where one
        applies, else the total."""
        score, used = np.zeros(len(total)), np.zeros(len(total), dtype=bool)
        weights = self.score_weights or (1.0,) * len(self.score_terms)
        for name, w in zip(self.score_terms, weights):
            if name in terms:
                score += w * np.where(applies[name], terms[name], 0.0)
                used |= applies[name]
        return np.where(used, score, total)

    def text(self, ctx: RolloutContext, prompts: dict) -> Step | None:
        sampler, model = ctx.sampler, ctx.policy
        g, pad, eos = sampler.group_size, model.pad_id, model.eos_id
        device = prompts["prompt_input_ids"].device
        with torch.no_grad():
            ro = sampler.text(model, prompts)
            if ro is None:
                return None
            rep, gen, total = ro.rep, ro.gen, ro.total
            first = self.rank(ro.terms, ro.applies, total).reshape(-1, g)
            best, worst = first.argmax(1), first.argmin(1)
            b = len(first)
            names = list(getattr(sampler.source, "names", None) or [])
            prefixes = []  # refine the best: keep its first tokens, resample the rest
            for i in range(b):
                kept = [t for t in content(gen, i * g + int(best[i])) if t != eos]
                trig = next((k for k, t in enumerate(kept)
                             if t in (model.box_id, model.point_id)), len(kept))  # fmt: skip
                cut = min(trig, int(math.ceil(self.refine_fraction * len(kept))))
                if self.refine == "objects" and names:  # regenerate from the first object phrase
                    cut = min(trig, object_cut(lambda ids: decode(model, ids), kept, names, cut))
                prefixes.append(kept[:cut])
            ext = extend_prompts(rep, [prefixes[j // g] for j in range(b * g)], pad)
            gen2 = model.generate(ext, do_sample=True, **sampler.sampling.generate_kwargs)
            rows = [prefixes[j // g] + content(gen2, j) for j in range(b * g)]
            gen2 = dict(gen2, texts=[decode(model, r) for r in rows])
            total2, _, terms2, applies2 = sampler.score(model, rep, gen2, update=False)
            refined = self.rank(terms2, applies2, total2).reshape(-1, g)
            chosen, rejected = [], []
            for i in range(b):
                k = int(refined[i].argmax())
                if refined[i, k] >= first[i, best[i]]:
                    chosen.append(rows[i * g + k])
                else:
                    chosen.append(content(gen, i * g + int(best[i])))
                rejected.append(content(gen, i * g + int(worst[i])))
            ro.log["refined_best"] = float(refined.max(1).mean())
            ro.log["chosen_minus_rejected"] = float(
                (np.maximum(refined.max(1), first.max(1)) - first.min(1)).mean()
            )
        pair = take_rows(prompts, list(range(b)) * 2)
        tokens, lengths = pad_tokens(chosen + rejected, pad, device)
        pol = sampler.logprobs(model, pair, tokens, lengths, 1.0)[0].sum(1)
        with torch.no_grad():
            ref = sampler.logprobs(ctx.reference, pair, tokens, lengths, 1.0)[0].sum(1)
        terms = self.loss(PairBatch(pol[:b], pol[b:], ref[:b], ref[b:]))
        gen["advantage"] = torch.as_tensor(first.reshape(-1), dtype=torch.float32)
        gen["terms"], gen["applies"] = ro.terms, ro.applies
        gen["pairs"] = {i * g: (decode(model, chosen[i]), decode(model, rejected[i]))
                        for i in range(b)}  # fmt: skip
        return Step(terms.pop("loss"), terms, rep, gen, total, ro.log)

    def ground_loss(self, ctx: RolloutContext, prompts: dict, ro: GroundRollout):
        rewards, g = ro.rewards, ctx.sampler.group_size
        best, worst = rewards.argmax(1), rewards.argmin(1)
        base = torch.arange(len(rewards), device=rewards.device) * g
        stds = ctx.sampler.sampling.ground_geometry_std
        ref = action_logprob(ro.ref, ro.cells, ro.taken, g, stds)
        pol = ro.logp[:, 0]
        terms = self.loss(PairBatch(pol[base + best], pol[base + worst],
                                    ref[base + best], ref[base + worst]))  # fmt: skip
        return terms.pop("loss"), terms, rewards.reshape(-1)
