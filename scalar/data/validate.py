"""``python -m scalar.data validate``: read every split of a data config, count and check it.

Each split of ``data.corpora`` is read with ``read_split`` and summarised with
``check_split`` (``check_decode=true``: ``check_split_decoding`` also decodes every image).
A malformed row is a counted ``malformed_row`` skip unless ``data.strict=true``.
A split set to ``null`` is disabled and left out; a split whose annotation files are
missing (the reader raises ``FileNotFoundError``) is reported in one line and left out,
unless ``strict``, where it is an error. At least one split must be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scalar.core.io import write_json
from scalar.data.imagecheck import check_decode
from scalar.data.merge import clear_cache, read_all
from scalar.data.readers.common import strict_rows
from scalar.data.scene import Corpus

COUNT_KEYS = ("images", "objects", "refs", "sentences", "regions", "relations", "categories")


class MissingSplitError(FileNotFoundError):
    """A split's files are missing and ``strict`` validation was asked for."""


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def read_split(spec: Any) -> Corpus:
    """Read one split: a reader (callable returning a Corpus) or a list merged onto the first."""
    return read_all(spec)


def check_split(corpus: Corpus) -> dict[str, Any]:
    """The counts of one read split (what was read, and the skips by reason); a joined
    corpus (``scalar.data.join``) adds its matched/unmatched/conflicting counts per pair."""
    counts = corpus.counts()
    if corpus.meta.get("join"):
        counts["join"] = corpus.meta["join"]
    return counts


def check_split_decoding(corpus: Corpus) -> dict[str, Any]:
    """``check_split`` after decoding every image of the split (``check_decode=true``):
    undecodable files count as ``corrupt_image`` / ``empty_image`` skips."""
    check_decode(corpus.scenes, corpus.skips)
    return check_split(corpus)


def validate_corpora(
    corpora: Mapping[str, Any],
    strict: bool = False,
    read: Callable[[Any], Corpus] = read_split,
    check: Callable[[Corpus], dict[str, Any]] = check_split,
) -> dict[str, Any]:
    """``{"splits": {split: counts}, "missing": {split: why}, "disabled": [split, ...]}``."""
    splits: dict[str, Any] = {}
    missing: dict[str, str] = {}
    disabled: list[str] = []
    try:
        for split, spec in corpora.items():
            if spec is None:
                disabled.append(split)
                continue
            try:
                corpus = read(spec)
            except FileNotFoundError as err:
                if strict:
                    raise MissingSplitError(
                        f"split {split}: {one_line(err)} (strict=true; ~data.corpora.{split} "
                        "leaves the split out)"
                    ) from None
                missing[split] = one_line(err)
                continue
            splits[split] = check(corpus)
    finally:
        clear_cache()
    if not splits:
        why = "; ".join(f"{s}: {m}" for s, m in missing.items()) or "data.corpora is empty"
        raise FileNotFoundError(f"no split could be read ({why})")
    return {"splits": splits, "missing": missing, "disabled": disabled}


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per split read, per missing split and for the disabled ones."""
    lines = []
    for split, counts in report["splits"].items():
        skips = counts["skips"]
        what = ", ".join(f"{k} {counts[k]}" for k in COUNT_KEYS)
        lines.append(f"{split}: {what}; skips: {skips if skips else 'none'}")
        for pair, c in counts.get("join", {}).items():
            if "matched" in c:
                lines.append(
                    f"{split}: join {pair}: {c['images']} images, matched {c['matched']}, "
                    f"unmatched {c['unmatched_base']} / {c['unmatched_other']}, "
                    f"conflicting {c['conflicting']}"
                )
    for split, why in report.get("missing", {}).items():
        lines.append(
            f"{split}: not validated, {why} (strict=true makes this an error; "
            f"~data.corpora.{split} leaves the split out)"
        )
    if report.get("disabled"):
        lines.append(f"disabled (null): {', '.join(report['disabled'])}")
    return lines


def validate(cfg, out: str | Path | None = None) -> dict[str, Any]:
    """Validate the data group of a composed ``conf/data_cli.yaml``; prints and writes the
    report (``out``, default ``<data.root>/validate.json``). ``data.root`` must exist."""
    from hydra.utils import instantiate

    root = Path(str(cfg.data.root))
    corpora = cfg.data.get("corpora") or {}
    specs = {
        split: None if spec is None else instantiate(spec, _convert_="all")
        for split, spec in corpora.items()
    }
    report = {"data": _data_name(cfg), "root": str(root)}
    check = check_split_decoding if cfg.get("check_decode", False) else check_split
    with strict_rows(bool(cfg.data.get("strict", False))):
        report |= validate_corpora(specs, strict=bool(cfg.get("strict", False)), check=check)
    for line in report_lines(report):
        print(line)
    path = Path(str(out)) if out else root / "validate.json"
    write_json(path, report)
    print(f"wrote {path}")
    return report


def _data_name(cfg) -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices.get("data"))
    except ValueError:  # composed outside a Hydra app
        return str(cfg.data.get("_target_", "data"))
