"""The application: run orchestration (train, evaluate, predict), command-line checks,
callbacks, checkpoints, strategies, schedules. Only the commands import it (``train.py``,
``eval.py``, ``predict.py``, ``python -m scalar.data``, ``bench/``, ``scripts/``); see
docs/design.md, "Layers"."""
