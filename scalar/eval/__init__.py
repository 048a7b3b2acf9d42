"""Evaluation: ``evaluate(cfg)`` (eval.py), predictions files and single-image prediction."""
