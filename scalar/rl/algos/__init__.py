"""RL algorithms (``conf/rl/algo``): SCST, GRPO and DPO, each a small object with its
hyper-parameters and its loss over a rollout batch, for text and grounding rows."""

from scalar.rl.algos.base import Algorithm, PairBatch, PolicyBatch, Step
from scalar.rl.algos.dpo import DPO
from scalar.rl.algos.grpo import GRPO
from scalar.rl.algos.scst import SCST

__all__ = ["DPO", "GRPO", "SCST", "Algorithm", "PairBatch", "PolicyBatch", "Step"]
