"""Reinforced fine-tuning helpers: prompts from images, rollouts, advantages and losses."""
