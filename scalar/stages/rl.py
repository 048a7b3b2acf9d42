"""Stage 2, open-world reinforced fine-tuning: SCST, GRPO or DPO on the shared model.

The pieces are configured apart (``conf/stage/rl.yaml``): the algorithm
(:mod:`scalar.rl.algos`, ``rl/algo``), how samples are drawn (:class:`scalar.rl.sampling.
Sampling`, ``rl/sampling``), where prompts come from and how their samples are put in
reward contexts (:mod:`scalar.rl.sources`, ``rl/prompts``; the reward group picks one) and
the reward registry (``reward``). :class:`RLModule` holds them, the frozen reference
policy, the training step and the checkpoint state. Rollouts and the policy pass run in
eval mode so that the sampled and the trained distributions are the same (no dropout /
batch-norm updates). Validation is the align stage's (``conf/stage/validation``).
``ground`` rows (image prompts with text-only queries) make the grounding itself the
action (:mod:`scalar.rl.grounding`); their loss is added to the text rows' loss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from scalar.rewards.combine import Rewards
from scalar.rl.algos.base import Algorithm
from scalar.rl.rollout import frozen_copy
from scalar.rl.sampling import RolloutContext, Sampler, Sampling
from scalar.rl.table import SampleTable
from scalar.stages.align import AlignModule

log = logging.getLogger(__name__)


def _unwrapped(name: str) -> str:
    """A parameter name without the prefixes FSDP and activation checkpointing insert."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


class RLModule(AlignModule):
    """Lightning module of the RL stage (see the module docstring).

    Args beyond ``model``, ``loss``, ``optimizer`` and ``scheduler`` (all keyword-only):
        algo: an :class:`~scalar.rl.algos.base.Algorithm` (SCST, GRPO or DPO).
        sampling: the :class:`~scalar.rl.sampling.Sampling` settings (G, temperature...).
        prompts: a prompt source (:class:`~scalar.rl.sources.ImagePrompts` or
            :class:`~scalar.rl.sources.LabeledPrompts`).
        rewards: the reward registry (:class:`~scalar.rewards.combine.Rewards`).
        table: the :class:`~scalar.rl.table.SampleTable` (default: none written).
        **align: :class:`AlignModule`'s keywords (trainable, nan_guard and
            the validation spec of ``conf/stage/validation``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        *,
        algo: Algorithm,
        sampling: Sampling,
        prompts: Any,
        rewards: Rewards,
        table: SampleTable | None = None,
        **align: Any,
    ):
        super().__init__(model, loss, optimizer, scheduler, **align)
        if not isinstance(algo, Algorithm):
            raise ValueError(f"algo must be an RL algorithm (rl/algo=scst|grpo|dpo), got {algo!r}")
        algo.check(sampling)
        self.algo, self.sampling, self.prompts, self.rewards = algo, sampling, prompts, rewards
        self.sampler = Sampler(sampling, rewards, prompts)
        self.table = table if table is not None else SampleTable(every=0)
        self.table.terms = self.table.terms or list(rewards.specs)  # a column per reward term
        self.save_hyperparameters(ignore=["model", "loss", "optimizer", "scheduler", "algo",
                                          "sampling", "prompts", "rewards", "table"])  # fmt: skip
        self.hparams.update(algo=algo.config(), sampling=asdict(sampling))
        self._ref: list[nn.Module] = []  # the frozen reference, outside the module tree

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        dm = self.trainer.datamodule
        if dm is None or not hasattr(dm, "collator"):
            raise ValueError("the RL stage needs a SceneDataModule (data=...)")
        dm.setup("fit")
        # the reference is the policy as the run starts (init_from weights): copied here,
        # before a checkpoint is restored and before FSDP wraps the model (no deepcopy of
        # a sharded module); a resumed run gets its trainable part from the checkpoint
        self._ref = [frozen_copy(self.model)]
        self.prompts.setup(dm)

    def train_loader(self, datamodule) -> Any:
        """The training loader of this stage (``None``: the datamodule's own); the app
        (``scalar.train.run``) asks for it when fitting starts, after ``setup``."""
        return self.prompts.loader(datamodule)

    def on_fit_start(self) -> None:
        self._ref = [self.reference.to(self.device)]

    @property
    def reference(self) -> nn.Module:
        if not self._ref:
            self._ref = [frozen_copy(self.model).to(self.device)]
        return self._ref[0]

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Any], batch_idx: int):
        ctx = RolloutContext(self.model, self.reference, self.sampler)
        start, reward_start = time.perf_counter(), self.sampler.reward_seconds
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                prompts = self.prompts.rows(self.model, batch, self.device)
            if prompts["text"] is None and prompts["ground"] is None:
                log.warning("no RL prompts in batch %d: step skipped", batch_idx)
                return None
            results = []
            if prompts["text"] is not None:
                results.append(("", prompts["text"], self.algo.text(ctx, prompts["text"])))
            if prompts["ground"] is not None:
                results.append(
                    ("ground/", prompts["ground"], self.algo.ground(ctx, prompts["ground"]))
                )
        finally:
            self.model.train(was)
        results = [r for r in results if r[2] is not None]
        if not results:
            log.warning("no reward term applies to the rows of batch %d: step skipped", batch_idx)
            return None
        loss = sum(step.loss for _, _, step in results)
        spent = time.perf_counter() - start  # rollouts, rewards and the policy pass (no backward)
        share = (self.sampler.reward_seconds - reward_start) / max(spent, 1e-9)
        self.log("train/time/reward_share", share, on_step=True, batch_size=1)
        n = sum(len(part["prompt_input_ids"]) for _, part, _ in results)
        if self._bad(not bool(torch.isfinite(loss.detach()).all())):
            return self._non_finite(batch, batch_idx, loss)
        stats = {f"{pre}{k}": v for pre, _, step in results for k, v in step.stats.items()}
        self._log_terms("train", {"loss": loss, **stats}, n, on_step=True, on_epoch=False)
        for pre, part, step in results:
            m = len(part["prompt_input_ids"])
            for name, value in step.log.items():
                self.log(f"train/reward/{pre}{name}", float(value), on_step=True, batch_size=m)
            self.table.write(self, self.algo.name, step.rep, step.gen, step.total)
        return loss

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
        checkpoint.update(self.prompts.state_dict())  # e.g. the rollout RNG of image prompts

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if checkpoint.get("reward_norms"):
            self.rewards.load_state_dict(checkpoint["reward_norms"])
        self.prompts.load_state_dict(checkpoint)
        saved = checkpoint.get("reference")
        if saved and self._ref:  # the reference of the interrupted run, not the resumed policy
            with torch.no_grad():
                for name, p in self._reference_trainable().items():
                    p.copy_(saved[name].to(p.device, p.dtype))
