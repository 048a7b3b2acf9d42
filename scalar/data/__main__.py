"""``python -m scalar.data``: build the synthetic corpus, validate or shard a configured corpus.

    python -m scalar.data synth [out=<dir>] [data.synthetic.seed=0] [data.synthetic.n_train=4000] ...
    python -m scalar.data validate data=<name> [data.root=<dir>] [out=<json>] [strict=true] [~data.corpora.<split>]
    python -m scalar.data shard data=<name> out=<dir> [shard_size=1000] [other overrides]
    python -m scalar.data spatial_qa data=<name> out=<file.jsonl> [source=auto] [depth=<model dir>] [fov=60] [splits=[train,val]]
    python -m scalar.data concepts out=<dir> [concept_seed=0]

A Hydra app on ``conf/data_cli.yaml``: the first word is the command (it becomes
``command=<name>``), the rest are overrides in Hydra's grammar (``key=value``, ``+key=``,
``~key``, ``key=null``, ``group=option``), with ``--help`` and ``--cfg job`` as in train.py.
``synth`` builds the synthetic corpus and its tokenizer (each only when missing) and prints
the manifest counts and the val split's connected-component proposal IoU. ``validate``
reads every split of the data group's corpora and prints /
writes (default ``<root>/validate.json``) the counts of what was read and of what was
skipped, by reason; a split whose files are missing is reported and left out (``strict=true``:
an error). ``shard`` prepares the samples of every split (as training would) and writes
them with their image bytes into WebDataset tar shards under ``out`` (``data.streaming=<out>``
then trains from them). ``spatial_qa`` writes the metric 3-D QA of the corpus as JSON lines
with counts per template (``scalar/data/spatial_export.py``). ``concepts`` writes the
concept-knowledge text of the realistic world (``scalar.data.synth.concepts``: train.txt,
heldout.txt, concepts.json) into ``out`` for ``stage=lm``. Errors are one line on stderr:
exit 2 for a usage error, 1 for a
data error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
COMMANDS = ("synth", "validate", "shard", "spatial_qa", "concepts")
USAGE = __doc__.split("\n\n")[1]
_FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}
_FLAGS_WITH_VALUE |= {"--cfg", "-c", "--package", "-p", "--info", "-i", "--experimental-rerun"}


class UsageError(Exception):
    pass


def data_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))


def hydra_args(argv: list[str]) -> list[str]:
    """The command line for Hydra: flags (``--cfg job``) first, then the overrides, the
    command word turned into the override ``command=<word>``."""
    flags, overrides, skip, found = [], [], False, False
    for arg in argv:
        if skip or arg.startswith("-"):
            flags.append(arg)
            skip = not skip and arg in _FLAGS_WITH_VALUE
        elif "=" in arg or found:
            overrides.append(arg)
        elif arg not in COMMANDS:
            raise UsageError(f"unknown command {arg!r}; valid: {', '.join(COMMANDS)}")
        else:
            overrides.insert(0, f"command={arg}")
            found = True
    return flags + overrides


def compose(overrides: list[str]):
    """``conf/data_cli.yaml`` composed with ``overrides`` (outside a Hydra app: tests, bench)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="data_cli", overrides=overrides)
    except MissingConfigException as e:
        name = next((o.split("=", 1)[1] for o in overrides if o.startswith("data=")), "?")
        if "data/" in str(e) or "'data'" in str(e):
            raise UsageError(f"unknown data {name!r}; valid: {', '.join(data_names())}") from None
        raise UsageError(str(e).splitlines()[0]) from None
    except (HydraException, OmegaConfBaseException) as e:
        raise UsageError(" ".join(str(e).split())) from None


def _root(cfg) -> Path:
    root = Path(str(cfg.data.root))
    if not root.exists():
        raise UsageError(f"data root not found: {root} (set data.root=<dir>)")
    return root


def validate(cfg) -> dict:
    from scalar.data.validate import validate as run_validate

    _root(cfg)
    return run_validate(cfg, cfg.get("out"))


def synth(cfg) -> dict:
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from scalar.core.errors import UserError
    from scalar.data.merge import clear_cache, read_all
    from scalar.data.prepare import concept_texts, ensure_synthetic, ensure_tokenizer

    data = cfg.data
    if not data.get("synthetic"):
        raise UsageError("synth builds data configs with a data.synthetic section (data=synthetic)")
    if cfg.get("out"):
        with open_dict(cfg):
            data.root = str(cfg.out)
    root = Path(str(data.root))
    options = instantiate(data.synthetic, _convert_="all") or {}
    options.pop("root", None)
    concepts = options.pop("concepts", None)  # the concept text folder, not a build option

    def corpora():
        specs = instantiate(data.corpora, _convert_="all").values()
        found = [read_all(spec) for spec in specs if spec is not None]
        clear_cache()
        return found

    try:
        built = ensure_synthetic(root, options)
    except (TypeError, UserError) as e:  # an unknown option, a corpus of another difficulty
        raise UsageError(str(e)) from None
    if not built:
        print(f"{root / 'manifest.json'} exists: corpus kept (delete {root} to rebuild)")
    if data.tokenizer_path:
        extra = concept_texts(concepts) if concepts else ()
        vocab = int(data.get("tokenizer_vocab_size", 1024))
        ensure_tokenizer(data.tokenizer_path, corpora, vocab, extra_texts=extra)
    manifest = json.loads((root / "manifest.json").read_text())
    print(f"synthetic corpus in {root} (tokenizer: {data.tokenizer_path})")
    for split, counts in manifest.get("counts", {}).items():
        print(f"  {split}: {json.dumps(counts, sort_keys=True)}")
    from scalar.rl.proposal_quality import corpus_proposal_summary

    found = corpus_proposal_summary(root, "val")
    if found:  # how much of the world connected components alone find (flat: ~0.99)
        manifest["val_proposals"] = found
        print(
            f"  val proposals (connected components): mean best IoU {found['mean_best_iou']}"
            f", share IoU >= 0.5 {found['share_iou_ge_0_5']} over {found['objects']} objects"
        )
    return manifest


def shard(cfg) -> dict:
    from hydra.utils import instantiate

    from scalar.data.shards import write_shards

    out = cfg.get("out")
    if not out:
        raise UsageError("shard needs out=<dir>")
    size = cfg.get("shard_size")
    if not isinstance(size, int) or size < 1:
        raise UsageError(f"shard_size must be a positive integer, got {size!r}")
    dm = instantiate(cfg.data)
    dm.setup()
    index = write_shards(dm.samples, str(out), size)
    for split, part in index["splits"].items():
        shards = len({e[0] for e in part["entries"]})
        print(f"{split}: {len(part['tasks'])} samples in {shards} shards")
    print(f"wrote {out}")
    return index


def spatial_qa(cfg) -> dict:
    from hydra.utils import instantiate

    from scalar.data.merge import read_all
    from scalar.data.spatial_export import Lifter, export
    from scalar.metrics.spatial_baselines import split_baselines

    if not cfg.get("out"):
        raise UsageError("spatial_qa needs out=<file.jsonl>")
    _root(cfg)
    specs = instantiate(cfg.data.corpora, _convert_="all")
    wanted = list(cfg.splits) if cfg.get("splits") else [s for s in specs if s != "unlabeled"]
    unknown = [s for s in wanted if s not in specs]
    if unknown:
        raise UsageError(f"unknown split(s) {unknown}; the data has {sorted(specs)}")
    lifter = Lifter(str(cfg.source), cfg.get("depth"), float(cfg.fov), float(cfg.depth_scale),
                    str(cfg.device))  # fmt: skip
    corpora = {s: read_all(specs[s]) for s in wanted}
    summary = export(corpora, lifter, Path(str(cfg.out)), int(cfg.max_pairs), split_baselines)
    for split, n in summary["total"].items():
        print(f"{split}: {n} questions {json.dumps(summary['questions'][split], sort_keys=True)}")
    for key in ("scenes", "lifting", "lifting_centre_error"):
        if summary.get(key):
            print(f"{key}: {json.dumps(summary[key], sort_keys=True)}")
    for split, scores in (summary.get("baselines") or {}).items():
        if split not in ("fit_on", "answers"):
            print(f"baselines on {split}: {json.dumps(scores, sort_keys=True)}")
    print(f"wrote {cfg.out} and {cfg.out}.counts.json")
    return summary


def concepts(cfg) -> dict:
    from scalar.data.synth.concepts import write_concepts

    out = cfg.get("out")
    if not out:
        raise UsageError("concepts needs out=<dir>")
    record = write_concepts(str(out), int(cfg.get("concept_seed") or 0))
    print(f"concept text in {out}: {json.dumps(record['counts'], sort_keys=True)}")
    return record


def run(cfg) -> None:
    """Run ``cfg.command``; errors are one line on stderr and ``SystemExit`` (2 usage, 1 data)."""
    from omegaconf import OmegaConf

    try:
        if OmegaConf.is_missing(cfg, "command"):
            raise UsageError(
                f"a command is required: python -m scalar.data {{{','.join(COMMANDS)}}} "
                "[override ...] (--help lists the keys)"
            )
        if cfg.command not in COMMANDS:
            raise UsageError(f"unknown command {cfg.command!r}; valid: {', '.join(COMMANDS)}")
        commands = {
            "synth": synth,
            "validate": validate,
            "shard": shard,
            "spatial_qa": spatial_qa,
            "concepts": concepts,
        }
        commands[cfg.command](cfg)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FileNotFoundError, ValueError) as e:  # AnnotationError is a ValueError
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> int:
    """The command line (``argv``, default ``sys.argv[1:]``) run as a Hydra app; exit code."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    from scalar.train.cli import guard

    os.environ.setdefault("PROJECT_ROOT", str(CONF_DIR.parent))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    saved = sys.argv
    try:
        args = hydra_args(argv)
        guard(args, CONF_DIR, "data_cli")
        GlobalHydra.instance().clear()
        sys.argv = [saved[0] if saved else "scalar.data", *args]
        app = hydra.main(config_path=str(CONF_DIR), config_name="data_cli", version_base="1.3")
        app(run)()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
