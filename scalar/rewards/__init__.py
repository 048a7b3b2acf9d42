"""Rewards for the RL stage: pure batched functions, a fast CIDEr-D, and their combination.

Every reward function maps a batch of completions (and its context) to a float64 array
``[B]``; :class:`RewardSpec` / :class:`Rewards` wire them to a context by parameter name
and combine them by configured weights.
"""

from scalar.rewards.cider import CiderD, simple_tokenize
from scalar.rewards.combine import Rewards, RewardSpec, RunningNorm, combine_rewards
from scalar.rewards.consistency import (
    describe_then_ground_reward,
    exclusive_grounding_reward,
    format_agreement_reward,
    ground_describe_ground_reward,
    prompt_format_agreement,
    prompt_format_consistency_reward,
    query_agreement_reward,
)
from scalar.rewards.entropy import entropy_regulariser, varentropy_entropy_penalty
from scalar.rewards.functions import (
    as_boxes,
    cider_reward,
    count_words,
    counting_reward,
    exhaustiveness_reward,
    first_box,
    greedy_match,
    iou_reward,
    length_reward,
    localization_reward,
    parse_count,
    semantic_reward,
)
from scalar.rewards.mentions import entity_mention_reward, mentioned_names

__all__ = [
    "CiderD",
    "RewardSpec",
    "Rewards",
    "RunningNorm",
    "as_boxes",
    "cider_reward",
    "combine_rewards",
    "count_words",
    "counting_reward",
    "describe_then_ground_reward",
    "entity_mention_reward",
    "entropy_regulariser",
    "exclusive_grounding_reward",
    "exhaustiveness_reward",
    "format_agreement_reward",
    "first_box",
    "greedy_match",
    "ground_describe_ground_reward",
    "iou_reward",
    "length_reward",
    "localization_reward",
    "mentioned_names",
    "parse_count",
    "prompt_format_agreement",
    "prompt_format_consistency_reward",
    "query_agreement_reward",
    "semantic_reward",
    "simple_tokenize",
    "varentropy_entropy_penalty",
]
