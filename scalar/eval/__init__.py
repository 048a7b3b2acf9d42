"""The evaluation library: eval loaders, per-sample prediction records and what a run
reports. The commands that use it (``eval.py``'s ``evaluate(cfg)`` and ``predict.py``) are
the application's: :mod:`scalar.train.evaluate` and :mod:`scalar.train.predict`."""
