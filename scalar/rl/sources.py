"""Where the RL stage's prompts come from, and the reward contexts of their samples
(``conf/rl/prompts``; the reward group picks the source that suits it).

A source draws on the datamodule: ``setup(datamodule)`` once the data is set up,
``loader(datamodule)`` the training loader (``None``: the datamodule's own),
``rows(model, batch, device)`` the policy rows of a batch (``{"text": ..., "ground": ...}``,
either ``None``), and ``contexts`` / ``ground_contexts`` / ``extra`` the reward contexts
of sampled rows (:func:`scalar.rl.scoring.score_rows`). ``state_dict`` is what an exact
resume needs besides the loader's position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scalar.rl.consistency_rollout import ROLES, ConsistencyRollout
from scalar.rl.labeled import caption_scorer, labeled_contexts, labeled_prompts
from scalar.rl.model_proposals import ModelProposals
from scalar.rl.prompts import PROPOSALS, prompt_loader
from scalar.rl.rollout import collate_prompts
from scalar.rl.vocabulary import stage_vocabulary


class ImagePrompts:
    """Images of a split with their annotations withheld, through the consistency pipeline
    (:mod:`scalar.rl.consistency_rollout`). Only the images and their weak text are read;
    the words are the ``vocabulary_split``'s category names plus the ``vocabulary`` file's
    (:mod:`scalar.rl.vocabulary`).

    ``split``: data split whose images give prompts; ``batch_size``: images per step;
    ``proposals`` (model | components | random) and ``max_proposals``: region proposals
    per image (model: the model's confident groundings of the vocabulary,
    :mod:`scalar.rl.model_proposals`; ``min_confidence`` and ``nms_iou`` select them);
    ``word_queries``: vocabulary words (most confident first) that become ground queries;
    ``captions``: also query the phrases of the images' weak captions; ``roles``: policy rows (ground, describe, format, gdg);
    ``prompt_kinds``: prompt kinds compared by the format rows; ``budgets``: ``ground_tokens``
    (budget of the greedy groundings and format anchors, default 8), ``ground_queries``
    (ground rows per image, 4) and ``describe_tokens`` (budget of the greedy descriptions of
    sampled boxes, 16);
    ``ground_describe``: also describe each sampled box and ground the description;
    ``seed``: proposal / query choice and prompt order.
    """

    def __init__(
        self,
        *,
        split: str = "unlabeled",
        batch_size: int = 4,
        proposals: str = "model",
        max_proposals: int = 8,
        vocabulary: str | None = None,
        vocabulary_split: str = "train",
        min_confidence: float = 0.0,
        nms_iou: float = 0.5,
        word_queries: int = 4,
        captions: bool = True,
        roles: Sequence[str] = ("ground",),
        prompt_kinds: Sequence[str] = ("box", "point", "mask"),
        budgets: Mapping[str, int] | None = None,
        ground_describe: bool = False,
        seed: int = 0,
    ):
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"rl.prompts.roles: unknown {unknown} (choose from {ROLES})")
        if proposals not in PROPOSALS:
            raise ValueError(f"rl.prompts.proposals must be one of {PROPOSALS}, got {proposals!r}")
        if int(batch_size) < 1:
            raise ValueError(f"rl.prompts.batch_size must be >= 1, got {batch_size}")
        self.split, self.batch_size = split, int(batch_size)
        self.proposals, self.max_proposals = proposals, int(max_proposals)
        self.roles, self.prompt_kinds = tuple(roles), tuple(prompt_kinds)
        budget = {"ground_tokens": 8, "ground_queries": 4, "describe_tokens": 16}
        unknown = sorted(set(budgets or {}) - set(budget))
        if unknown:
            raise ValueError(
                f"rl.prompts.budgets: unknown {unknown} (choose from {sorted(budget)})"
            )
        budget.update({k: int(v) for k, v in (budgets or {}).items()})
        self.ground_tokens, self.ground_queries = budget["ground_tokens"], budget["ground_queries"]
        self.describe_tokens, self.ground_describe = (
            budget["describe_tokens"],
            bool(ground_describe),
        )
        self.seed = int(seed)
        self.vocabulary, self.vocabulary_split = vocabulary, vocabulary_split
        self.proposer_args = dict(replace=proposals == "model", max_proposals=self.max_proposals,
                                  min_confidence=float(min_confidence), nms_iou=float(nms_iou),
                                  max_queries=int(word_queries), captions=bool(captions))  # fmt: skip
        self.words: list[str] = []
        self.proposer: ModelProposals | None = None
        self.extra: dict[str, Any] = {}
        self.collator = None
        self.rollout: ConsistencyRollout | None = None

    def setup(self, datamodule) -> None:
        self.collator = datamodule.collator
        corpora = datamodule.read_corpora()  # the training split's categories only
        self.words = stage_vocabulary(corpora, self.vocabulary_split, self.vocabulary)
        self.proposer = ModelProposals(self.words, **self.proposer_args)
        self.rollout = ConsistencyRollout(
            self.collator, self.roles, self.prompt_kinds, self.ground_tokens, self.seed,
            self.ground_queries, self.describe_tokens, self.words,
        )  # fmt: skip

    def loader(self, datamodule):
        """A shuffled, resumable loader over the images of the split."""
        return prompt_loader(datamodule, self.split, self.batch_size, self.proposals,
                             self.max_proposals, self.seed)  # fmt: skip

    def rows(self, model, batch: Mapping[str, Any], device=None) -> dict:
        self.proposer.fill(model, self.collator, batch["items"], device)
        samples, images = self.rollout.prompts(model, batch["items"], device)
        out = {}
        for part, keep in (("text", False), ("ground", True)):
            rows = [j for j, s in enumerate(samples) if (s.meta.get("role") == "ground") == keep]
            out[part] = collate_prompts(
                self.collator, [samples[j] for j in rows], [images[j] for j in rows], device
            ) if rows else None  # fmt: skip
        return out

    def contexts(self, model, batch: Mapping[str, Any], gen: Mapping[str, Any], device=None):
        return self.rollout.contexts(model, batch, gen, device)

    def ground_contexts(self, model, batch: Mapping[str, Any], boxes: Sequence, device=None):
        return self.rollout.ground_contexts(model, batch, boxes, device, self.ground_describe)

    def state_dict(self) -> dict[str, Any]:
        """Which proposals and expressions come next."""
        return {"rollout_rng": self.rollout.rng.bit_generator.state} if self.rollout else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("rollout_rng") and self.rollout is not None:
            self.rollout.rng.bit_generator.state = state["rollout_rng"]


class LabeledPrompts:
    """The datamodule's own training batches: rows of ``tasks`` become prompts, scored
    against their annotations (REC boxes, caption references)."""

    def __init__(self, *, tasks: Sequence[str] = ("rec", "caption")):
        if not tasks:
            raise ValueError("rl.prompts.tasks: name at least one task (rec, caption)")
        self.tasks = tuple(tasks)
        self.extra: dict[str, Any] = {}

    def setup(self, datamodule) -> None:
        self.extra["scorer"] = caption_scorer(datamodule.samples.get("train") or [])

    def loader(self, datamodule) -> None:
        return None  # the datamodule's training loader

    def rows(self, model, batch: Mapping[str, Any], device=None) -> dict:
        return {"text": labeled_prompts(batch, self.tasks), "ground": None}

    def contexts(self, model, batch: Mapping[str, Any], gen: Mapping[str, Any], device=None):
        return labeled_contexts(batch, gen)

    def ground_contexts(self, model, batch: Mapping[str, Any], boxes: Sequence, device=None):
        raise ValueError("labeled prompts have no grounding rows")

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
