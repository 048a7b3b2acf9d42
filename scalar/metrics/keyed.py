"""Per-sample records keyed by sample, so that DDP's padded duplicates count once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scalar.metrics.base import RecordMetric, group_keys


class KeyedRecordMetric(RecordMetric):
    """Keeps ``(key, record)`` pairs; :meth:`unique` drops repeated keys (first kept).

    A distributed sampler pads the last batches of some ranks with samples another rank
    already scored; keys (``(split, dataset index)`` in evaluation) make those count once.
    A ``None`` key is never deduplicated.
    """

    def _add(self, keys: Sequence[Any] | None, records: list[dict[str, Any]]) -> None:
        keys = list(keys) if keys is not None else [None] * len(records)
        if len(keys) != len(records):
            raise ValueError(f"{len(keys)} keys for {len(records)} samples")
        self.records.extend(zip(keys, records))

    def unique(self) -> list[tuple[Any, dict[str, Any]]]:
        seen: set = set()
        out = []
        for key, rec in self.records:
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            out.append((key, rec))
        return out

    def latest(self, n: int) -> list[dict[str, Any]]:
        """The records of the last ``n`` samples added (per-sample scores for predictions)."""
        return [rec for _, rec in self.records[len(self.records) - n :]] if n else []


def metas_or_none(metas: Sequence[dict | None] | None, n: int) -> list[dict | None]:
    metas = list(metas) if metas is not None else [None] * n
    if len(metas) != n:
        raise ValueError(f"{len(metas)} metas for {n} samples")
    return metas


def groups_of(meta: dict | None, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """``group_keys`` of the meta plus the values of the ``extra`` meta fields."""
    keys = list(group_keys(meta))
    for field in extra:
        value = (meta or {}).get(field)
        if value:
            keys.append(str(value))
    return tuple(dict.fromkeys(keys))


def grouped(
    records: list[dict[str, Any]], fn, groups_field: str = "groups"
) -> dict[str, float | int]:
    """``fn(records)`` (a dict of values) overall, and ``<group>/<name>`` per group."""
    out = dict(fn(records))
    by_group: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        for g in rec.get(groups_field, ()):
            by_group.setdefault(g, []).append(rec)
    for g in sorted(by_group):
        for name, value in fn(by_group[g]).items():
            out[f"{g}/{name}"] = value
    return out
