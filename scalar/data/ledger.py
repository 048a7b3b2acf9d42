"""The skip ledger of a run: one ``Skips`` per split, written to ``skips.json``.

Every skip is counted in the split whose scenes it belongs to: rows a reader skipped
(``merge.select_split`` hands each split the skips of its own images), samples dropped
as too long, and images that failed to decode while training or validating
(``missing_image``, ``corrupt_image``, ``empty_image``; each file once per split).
``metrics()`` gives the flat ``skips/<split>/<reason>`` numbers of ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

from scalar.core.io import write_json
from scalar.data.scene import Skips


class SkipLedger:
    """``{split: Skips}`` with a report, flat metrics and a JSON file."""

    def __init__(self) -> None:
        self.splits: dict[str, Skips] = {}

    def split(self, name: str) -> Skips:
        return self.splits.setdefault(str(name), Skips())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: skips.as_dict() for name, skips in sorted(self.splits.items()) if skips}

    def metrics(self) -> dict[str, float]:
        return {
            f"skips/{name}/{reason}": float(n)
            for name, counts in self.as_dict().items()
            for reason, n in counts.items()
        }

    def report(self) -> str:
        counts = self.as_dict()
        if not counts:
            return "skips: none"
        lines = ["skips (per split):"]
        for name, by_reason in counts.items():
            lines.append(f"  {name}: " + ", ".join(f"{r} {n}" for r, n in by_reason.items()))
        return "\n".join(lines)

    def write(self, path: str | Path) -> None:
        data = {
            name: {"counts": skips.as_dict(), "examples": skips.examples}
            for name, skips in sorted(self.splits.items())
            if skips
        }
        write_json(path, data)


def batch_split(datamodule, dataloader_idx: int) -> str:
    """The split a batch being transferred comes from (train, or an eval split's name)."""
    trainer = datamodule.trainer
    if trainer is None or trainer.training:
        return "train"
    stage = "val" if trainer.validating or trainer.sanity_checking else None
    stage = stage or ("test" if trainer.testing else "predict")
    names = datamodule.eval_split_names(stage)
    return names[dataloader_idx] if dataloader_idx < len(names) else f"{stage}{dataloader_idx}"


def record_skips(datamodule, run_dir: str | Path) -> dict[str, float]:
    """Write ``<run_dir>/skips.json`` and print the report; the ``skips/...`` metrics."""
    ledger = getattr(datamodule, "ledger", None)
    if not isinstance(ledger, SkipLedger):
        return {}
    ledger.write(Path(run_dir) / "skips.json")
    print(ledger.report())
    return ledger.metrics()
