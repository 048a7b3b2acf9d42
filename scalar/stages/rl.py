"""Stage 2, open-world reinforced fine-tuning: SCST, GRPO or DPO on the shared model.

Each training step draws prompts (unlabeled images through the consistency pipeline, or
the datamodule's labeled batches for ground-truth rewards), samples G completions per
prompt with ``model.generate(do_sample=True)`` (KV cache), scores them with the configured
reward registry and updates the policy with log-probabilities recomputed teacher-forced
(with gradients). Rollouts and the policy pass run in eval mode so that the sampled and
the trained distributions are the same (no dropout / batch-norm updates). Validation is
the align stage's (greedy REC / ROC / caption metrics). ``ground`` rows (image prompts
with text-only queries) make the grounding itself the action: a grid cell is sampled
from the spatial decoder's attention (:mod:`scalar.rl.grounding`); their loss is added
to the text rows' loss.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scalar.rewards.combine import Rewards
from scalar.rl.advantages import dpo_loss, grpo_advantages, grpo_loss, scst_advantages
from scalar.rl.consistency_rollout import ROLES, ConsistencyRollout
from scalar.rl.grounding import (
    action_logprob,
    categorical_kl,
    cell_logprobs,
    placed_boxes,
    sample_cells,
    sample_geometry,
)
from scalar.rl.labeled import caption_scorer, labeled_contexts, labeled_prompts
from scalar.rl.prompts import prompt_loader
from scalar.rl.rollout import (
    collate_prompts,
    extend_prompts,
    frozen_copy,
    repeat_rows,
    sample_groups,
    take_rows,
    token_logprobs,
)
from scalar.rl.scoring import score_rows
from scalar.stages.align import EVAL_TASKS, AlignModule, _plain

log = logging.getLogger(__name__)


def _unwrapped(name: str) -> str:
    """A parameter name without the prefixes FSDP and activation checkpointing insert."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


ALGOS = ("scst", "grpo", "dpo")
SOURCES = ("images", "labeled")


def pad_tokens(rows: Sequence[Sequence[int]], pad_id: int, device=None) -> tuple[Tensor, Tensor]:
    """Token lists -> ``(tokens [N, L] padded with pad_id, lengths [N])``."""
    width = max([len(r) for r in rows] + [1])
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out.to(device), torch.tensor([len(r) for r in rows], device=device)


class RLModule(AlignModule):
    """Lightning module of the RL stage (see the module docstring and conf/stage/rl.yaml).

    Args beyond :class:`AlignModule`'s: ``rewards`` (name -> ``RewardSpec``), ``algo``
    (scst | grpo | dpo), ``group_size`` G, sampling ``temperature`` / ``top_k`` /
    ``top_p``, ``rollout_tokens`` (generation budget of a sample), ``kl_beta``,
    ``clip_eps``, ``adv_eps``, ``dpo_beta``, ``dpo_score_terms`` (terms summed to rank
    DPO samples; the weighted total where none applies), ``refine_fraction`` (share of
    the best sample's tokens kept as the refinement prefix), ``source`` (images |
    labeled), ``prompt_split`` / ``prompt_batch_size`` / ``proposals`` /
    ``max_proposals`` (image prompts), ``roles`` / ``prompt_kinds`` / ``ground_tokens``
    / ``ground_queries`` / ``describe_tokens`` / ``ground_temperature`` /
    ``ground_describe`` (consistency pipeline; ``ground`` rows sample cells from
    ``softmax(attention logits / t)``; with ``ground_describe`` each sampled box is also
    described and the description grounded again, for the describe-based terms;
    ``ground_geometry_std``: (centre std in cells, log-size std) of the sampled geometry),
    ``labeled_tasks``, ``norm_clip``, ``table_every`` /
    ``table_rows`` / ``table_dir`` (sample table), ``seed``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        rewards: Mapping[str, Any] | None = None,
        algo: str = "grpo",
        group_size: int = 4,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        rollout_tokens: int = 16,
        kl_beta: float = 0.04,
        clip_eps: float = 0.2,
        adv_eps: float = 1e-6,
        adv_std: bool = True,
        dpo_beta: float = 0.1,
        dpo_score_terms: Sequence[str] = ("semantic", "localization"),
        refine_fraction: float = 0.5,
        source: str = "images",
        prompt_split: str = "unlabeled",
        prompt_batch_size: int = 4,
        proposals: str = "components",
        max_proposals: int = 8,
        roles: Sequence[str] = ROLES,
        prompt_kinds: Sequence[str] = ("box", "point", "mask"),
        ground_tokens: int = 8,
        ground_queries: int = 4,
        describe_tokens: int = 16,
        ground_temperature: float = 1.0,
        ground_describe: bool = False,
        ground_geometry_std: Sequence[float] = (0.15, 0.05),
        labeled_tasks: Sequence[str] = ("rec", "caption"),
        norm_clip: float | None = None,
        table_every: int = 50,
        table_rows: int = 16,
        table_dir: str | None = None,
        seed: int = 0,
        trainable: Mapping[str, bool | str] | None = None,
        nan_policy: str = "skip",
        check_grads: bool = True,
        generate: bool = True,
        max_new_tokens: int = 32,
        eval_tasks: Sequence[str] = EVAL_TASKS,
        iou_threshold: float = 0.5,
        pictures: int = 4,
        picture_dir: str | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ):
        super().__init__(
            model, loss, optimizer, scheduler, trainable, nan_policy, check_grads, generate,
            max_new_tokens, eval_tasks, iou_threshold, pictures, picture_dir, image_mean,
            image_std,
        )  # fmt: skip
        if algo not in ALGOS:
            raise ValueError(f"rl.algo must be one of {ALGOS}, got {algo!r}")
        if source not in SOURCES:
            raise ValueError(f"reward source must be one of {SOURCES}, got {source!r}")
        if int(group_size) < (2 if algo in ("grpo", "dpo") else 1):
            raise ValueError(f"group_size must be >= 2 for {algo}, got {group_size}")
        if not rewards:
            raise ValueError("no reward terms: choose a reward config (reward=consistency)")
        self.rewards = Rewards(dict(rewards), norm_clip=norm_clip)
        self.algo, self.group_size, self.source = algo, int(group_size), source
        self.gen_kwargs = {"temperature": float(temperature), "top_k": int(top_k),
                           "top_p": float(top_p), "max_new_tokens": int(rollout_tokens)}  # fmt: skip
        self.temperature = float(temperature)
        self.kl_beta, self.clip_eps, self.adv_eps = float(kl_beta), float(clip_eps), float(adv_eps)
        self.adv_std = bool(adv_std)
        self.dpo_beta, self.refine_fraction = float(dpo_beta), float(refine_fraction)
        self.dpo_score_terms = tuple(_plain(dpo_score_terms))
        self.prompt_split, self.prompt_batch_size = prompt_split, int(prompt_batch_size)
        self.proposals, self.max_proposals = proposals, int(max_proposals)
        self.roles, self.prompt_kinds = tuple(_plain(roles)), tuple(_plain(prompt_kinds))
        self.ground_tokens, self.labeled_tasks = int(ground_tokens), tuple(_plain(labeled_tasks))
        self.ground_queries, self.describe_tokens = int(ground_queries), int(describe_tokens)
        self.ground_temperature, self.ground_describe = float(ground_temperature), ground_describe
        self.ground_geometry_std = tuple(float(v) for v in _plain(ground_geometry_std))
        self.table_every, self.table_rows, self.table_dir = (
            int(table_every),
            int(table_rows),
            table_dir,
        )
        self.seed = int(seed)
        self.save_hyperparameters(ignore=["model", "loss", "optimizer", "scheduler", "rewards"])
        self._ref: list[nn.Module] = []  # the frozen reference, outside the module tree
        self.collator = None
        self.consistency: ConsistencyRollout | None = None
        self.extra: dict[str, Any] = {}
        self.table_path: Path | None = None

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        dm = self.trainer.datamodule
        if dm is None or not hasattr(dm, "collator"):
            raise ValueError("the RL stage needs a SceneDataModule (data=...)")
        dm.setup("fit")
        self.collator = dm.collator
        # the reference is the policy as the run starts (init_from weights): copied here,
        # before a checkpoint is restored and before FSDP wraps the model (no deepcopy of
        # a sharded module); a resumed run gets its trainable part from the checkpoint
        self._ref = [frozen_copy(self.model)]
        if self.source == "images":
            names = {c.name for corpus in dm.read_corpora().values() for c in corpus.categories}
            self.consistency = ConsistencyRollout(
                self.collator, self.roles, self.prompt_kinds, self.ground_tokens, self.seed,
                self.ground_queries, self.describe_tokens, sorted(names),
            )  # fmt: skip
            split, bs, props, n, seed = (self.prompt_split, self.prompt_batch_size,
                                         self.proposals, self.max_proposals, self.seed)  # fmt: skip
            dm.train_dataloader = lambda: prompt_loader(dm, split, bs, props, n, seed)
        else:
            self.extra["scorer"] = caption_scorer(dm.samples.get("train") or [])

    def on_fit_start(self) -> None:
        self._ref = [self.reference.to(self.device)]

    @property
    def reference(self) -> nn.Module:
        if not self._ref:
            self._ref = [frozen_copy(self.model).to(self.device)]
        return self._ref[0]

    # ------------------------------------------------------------------ rollouts
    def prompt_batch(self, batch: Mapping[str, Any]) -> dict:
        """``{"text": rows whose completions are sampled, "ground": rows whose boxes are}``
        (either ``None`` when the step has no such rows)."""
        if self.source == "labeled":
            return {"text": labeled_prompts(batch, self.labeled_tasks), "ground": None}
        samples, images = self.consistency.prompts(self.model, batch["items"], self.device)
        out = {}
        for part, keep in (("text", False), ("ground", True)):
            rows = [j for j, s in enumerate(samples) if (s.meta.get("role") == "ground") == keep]
            out[part] = collate_prompts(
                self.collator, [samples[j] for j in rows], [images[j] for j in rows], self.device
            ) if rows else None  # fmt: skip
        return out

    def score(self, batch: Mapping[str, Any], gen: Mapping[str, Any], update: bool = True):
        if self.source == "labeled":
            contexts = labeled_contexts(batch, gen)
        else:
            contexts = self.consistency.contexts(self.model, batch, gen, self.device)
        return score_rows(self.rewards, contexts, len(gen["texts"]), self.extra, update)

    def score_ground(self, batch: Mapping[str, Any], boxes: Sequence, update: bool = True):
        """``(total [N], log, contexts)`` of ``ground`` rows whose boxes are ``boxes``."""
        ctx = self.consistency.ground_contexts(
            self.model, batch, boxes, self.device, self.ground_describe
        )
        total, logd, _, _ = score_rows(self.rewards, ctx, len(boxes), self.extra, update)
        return total, logd, ctx

    def training_step(self, batch: Mapping[str, Any], batch_idx: int):
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                prompts = self.prompt_batch(batch)
            if prompts["text"] is None and prompts["ground"] is None:
                log.warning("no RL prompts in batch %d: step skipped", batch_idx)
                return None
            results = []
            if prompts["text"] is not None:
                step = self._dpo if self.algo == "dpo" else self._policy_gradient
                results.append(("", prompts["text"], step(prompts["text"])))
            if prompts["ground"] is not None:
                results.append(("ground/", prompts["ground"], self._ground(prompts["ground"])))
        finally:
            self.model.train(was)
        results = [r for r in results if r[2] is not None]
        if not results:
            log.warning("no reward term applies to the rows of batch %d: step skipped", batch_idx)
            return None
        loss = sum(r[2][0] for r in results)
        n = sum(len(r[1]["prompt_input_ids"]) for r in results)
        if self._bad(not bool(torch.isfinite(loss.detach()).all())):
            return self._non_finite(batch, batch_idx, loss)
        stats = {f"{pre}{k}": v for pre, _, r in results for k, v in r[1].items()}
        self._log_terms("train", {"loss": loss, **stats}, n, on_step=True, on_epoch=False)
        for pre, part, (_, _, rep, gen, (total, logd)) in results:
            m = len(part["prompt_input_ids"])
            for name, value in logd.items():
                self.log(f"train/reward/{pre}{name}", float(value), on_step=True, batch_size=m)
            self._table(rep, gen, total)
        return loss

    def _policy_gradient(self, prompts):
        g = self.group_size
        with torch.no_grad():
            rep, gen = sample_groups(self.model, prompts, g, self.gen_kwargs)
            total, logd, terms, applies = self.score(rep, gen)
        if not logd["coverage"]:
            return None
        rewards = torch.as_tensor(total, dtype=torch.float32, device=self.device).view(-1, g)
        tokens, lengths = gen["tokens"], gen["lengths"]
        new, mask = token_logprobs(self.model, rep, tokens, lengths, self.temperature)
        if self.algo == "grpo":
            adv = grpo_advantages(rewards, self.adv_eps, self.adv_std)
            old = gen["logprobs"].to(new)
        else:
            with torch.no_grad():
                greedy = self.model.generate(
                    prompts, do_sample=False, max_new_tokens=self.gen_kwargs["max_new_tokens"]
                )
                g_total = self.score(prompts, greedy, update=False)[0]
            adv = scst_advantages(rewards, torch.as_tensor(g_total, device=self.device))
            old = new.detach()
            logd["greedy"] = float(np.mean(g_total))
        with torch.no_grad():
            ref = token_logprobs(self.reference, rep, tokens, lengths, self.temperature)[0]
        loss, stats = grpo_loss(new, old, ref, adv.reshape(-1), mask, self.clip_eps, self.kl_beta)
        stats["advantage_abs"] = adv.abs().mean()
        stats["completion_len"] = lengths.float().mean()
        gen["advantage"] = adv.reshape(-1).detach().cpu()
        return loss, stats, rep, gen, (total, logd)

    # ------------------------------------------------------------------ DPO
    def _rank(self, terms, applies, total) -> np.ndarray:
        score, used = np.zeros(len(total)), np.zeros(len(total), dtype=bool)
        for name in self.dpo_score_terms:
            if name in terms:
                score += np.where(applies[name], terms[name], 0.0)
                used |= applies[name]
        return np.where(used, score, total)

    def _content(self, gen, j: int) -> list[int]:
        return gen["tokens"][j, : int(gen["lengths"][j])].tolist()

    def _dpo(self, prompts):
        g, model = self.group_size, self.model
        pad, eos = model.pad_id, model.eos_id
        with torch.no_grad():
            rep, gen = sample_groups(model, prompts, g, self.gen_kwargs)
            total, logd, terms, applies = self.score(rep, gen)
            if not logd["coverage"]:
                return None
            first = self._rank(terms, applies, total).reshape(-1, g)
            best, worst = first.argmax(1), first.argmin(1)
            b = len(first)
            # refine the best: keep its first tokens (up to the first trigger), resample the rest
            prefixes = []
            for i in range(b):
                content = self._content(gen, i * g + int(best[i]))
                content = [t for t in content if t != eos]
                cut = next((k for k, t in enumerate(content)
                            if t in (model.box_id, model.point_id)), len(content))  # fmt: skip
                keep = min(cut, int(math.ceil(self.refine_fraction * len(content))))
                prefixes.append(content[:keep])
            ext = extend_prompts(rep, [prefixes[j // g] for j in range(b * g)], pad)
            gen2 = model.generate(ext, do_sample=True, **self.gen_kwargs)
            rows = [prefixes[j // g] + self._content(gen2, j) for j in range(b * g)]
            gen2 = dict(gen2, texts=[self._decode(r) for r in rows])
            total2, _, terms2, applies2 = self.score(rep, gen2, update=False)
            refined = self._rank(terms2, applies2, total2).reshape(-1, g)
            chosen, rejected = [], []
            for i in range(b):
                k = int(refined[i].argmax())
                if refined[i, k] >= first[i, best[i]]:
                    chosen.append(rows[i * g + k])
                else:
                    chosen.append(self._content(gen, i * g + int(best[i])))
                rejected.append(self._content(gen, i * g + int(worst[i])))
            logd["refined_best"] = float(refined.max(1).mean())
            logd["chosen_minus_rejected"] = float(
                (np.maximum(refined.max(1), first.max(1)) - first.min(1)).mean()
            )
        pair = take_rows(prompts, list(range(b)) * 2)
        tokens, lengths = pad_tokens(chosen + rejected, pad, self.device)
        pol, mask = token_logprobs(model, pair, tokens, lengths, 1.0)
        with torch.no_grad():
            ref = token_logprobs(self.reference, pair, tokens, lengths, 1.0)[0]
        seq_pol, seq_ref = pol.sum(1), ref.sum(1)
        loss, stats = dpo_loss(seq_pol[:b], seq_pol[b:], seq_ref[:b], seq_ref[b:], self.dpo_beta)
        gen["advantage"] = torch.as_tensor(first.reshape(-1), dtype=torch.float32)
        return loss, stats, rep, gen, (total, logd)

    # ------------------------------------------------------------------ grounding rows
    def _ground(self, prompts):
        """One update of ``ground`` rows: G cells sampled per query from the decoder's
        attention, boxes scored by the consistency terms, and GRPO (clipped ratio and the
        exact categorical KL to the reference), SCST (greedy box as the baseline) or DPO
        (best vs worst sampled box; no refinement) on the cells' log-probabilities."""
        g, t = self.group_size, self.ground_temperature
        rep = repeat_rows(prompts, g)
        policy = cell_logprobs(self.model, prompts, t)  # with gradients
        stds = self.ground_geometry_std
        h, w = policy["grid_hw"]
        with torch.no_grad():
            cells = sample_cells(policy["logp"], g)
            offset, log_size = (policy[k].repeat_interleave(g, 0) for k in ("offset", "log_size"))
            taken = sample_geometry(offset, log_size, stds, (1 / w, 1 / h))
            boxes = placed_boxes(cells, *taken, policy["grid_hw"])
            total, logd, contexts = self.score_ground(rep, boxes.tolist())
            ref = cell_logprobs(self.reference, prompts, t)
        if not logd["coverage"]:
            return None
        rewards = torch.as_tensor(total, dtype=torch.float32, device=self.device).view(-1, g)
        new = action_logprob(policy, cells, taken, g, stds)[:, None]  # [N*G, 1]: one action
        # KL of the temperature-1 distributions: the ones the greedy box averages over
        kl = categorical_kl(policy["greedy_logp"], ref["greedy_logp"]).mean()
        if self.algo == "dpo":
            best, worst = rewards.argmax(1), rewards.argmin(1)
            base = torch.arange(len(rewards), device=self.device) * g
            ref_c = action_logprob(ref, cells, taken, g, stds)
            pol_c = new[:, 0]
            loss, stats = dpo_loss(pol_c[base + best], pol_c[base + worst],
                                   ref_c[base + best], ref_c[base + worst], self.dpo_beta)  # fmt: skip
            adv = rewards.reshape(-1)
        else:
            if self.algo == "grpo":
                adv = grpo_advantages(rewards, self.adv_eps, self.adv_std)
            else:
                greedy = policy["boxes"].detach().tolist()
                g_total = self.score_ground(prompts, greedy, update=False)[0]
                adv = scst_advantages(rewards, torch.as_tensor(g_total, device=self.device))
                logd["greedy"] = float(np.mean(g_total))
            ones = torch.ones_like(new)
            loss, stats = grpo_loss(new, new.detach(), None, adv.reshape(-1), ones, self.clip_eps)
            loss = loss + self.kl_beta * kl
        stats.update(kl=kl.detach(), advantage_abs=adv.abs().mean())
        texts = contexts[0][1].get("descriptions") if contexts else None
        texts = [f" -> {d}" for d in texts] if texts else [""] * len(cells)
        gen = {
            "texts": [f"{[round(v, 3) for v in b]}{d}" for b, d in zip(boxes.tolist(), texts)],
            "advantage": adv.reshape(-1).detach().cpu(),
        }
        return loss, stats, rep, gen, (total, logd)

    def _decode(self, ids: Sequence[int]) -> str:
        tok, model = self.model.tokenizer, self.model
        strip = set(tok.all_special_ids) - {model.box_id, model.point_id}
        return tok.decode([i for i in ids if i not in strip], skip_special_tokens=False)

    # ------------------------------------------------------------------ sample table
    def _table(self, rep, gen, total) -> None:
        step = int(self.global_step)
        if self.table_every <= 0 or step % self.table_every or not self.trainer.is_global_zero:
            return
        adv = gen.get("advantage")
        cols = ["step", "algo", "task", "prompt", "completion", "reward", "advantage"]
        data = []
        for j, s in enumerate(rep["samples"][: self.table_rows]):
            role = s.meta.get("role", s.task)
            a = float(adv[j]) if adv is not None and j < len(adv) else float("nan")
            data.append([step, self.algo, role, s.prompt, gen["texts"][j], float(total[j]), a])
        root = Path(self.table_dir or self.trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.table_path = root / "rl_samples.csv"
        new = not self.table_path.exists()
        with self.table_path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(cols)
            writer.writerows(data)
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key="train/samples", columns=cols, data=data, step=step)

    # ------------------------------------------------------------------ state
    def _reference_trainable(self) -> dict[str, Tensor]:
        """The reference's copies of the policy's trainable weights (the rest is shared)."""
        names = {_unwrapped(n) for n, p in self.model.named_parameters() if p.requires_grad}
        return {n: p for n, p in self.reference.named_parameters() if n in names}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["reward_norms"] = self.rewards.state_dict()
        if self._ref:
            ref = self._reference_trainable()
            checkpoint["reference"] = {n: p.detach().cpu().clone() for n, p in ref.items()}
        if self.consistency is not None:  # which proposals and expressions come next
            checkpoint["rollout_rng"] = self.consistency.rng.bit_generator.state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if checkpoint.get("reward_norms"):
            self.rewards.load_state_dict(checkpoint["reward_norms"])
        if checkpoint.get("rollout_rng") and self.consistency is not None:
            self.consistency.rng.bit_generator.state = checkpoint["rollout_rng"]
        saved = checkpoint.get("reference")
        if saved and self._ref:  # the reference of the interrupted run, not the resumed policy
            with torch.no_grad():
                for name, p in self._reference_trainable().items():
                    p.copy_(saved[name].to(p.device, p.dtype))
