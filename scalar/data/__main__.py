"""``python -m scalar.data``: build the synthetic corpus, or validate a configured corpus.

    python -m scalar.data synth [out=<dir>] [seed=0] [n_train=4000] [workers=2] ...
    python -m scalar.data validate data=<name> [data.root=<dir>] [out=<json>] [other overrides]
    python -m scalar.data shard data=<name> out=<dir> [shard_size=1000] [other overrides]

``synth`` builds the synthetic corpus and its tokenizer (each only when missing) and prints
the manifest counts. ``validate`` composes ``conf/data_cli.yaml`` with the overrides, reads
every split of the data group's corpora and prints / writes (default
``<root>/validate.json``) the counts of what was read and of what was skipped, by reason.
``shard`` prepares the samples of every split (as training would) and writes them with
their image bytes into WebDataset tar shards under ``out`` (``data.streaming=<out>`` then
trains from them). Errors are one line on stderr: exit 2 for a usage error, 1 for a data error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
USAGE = __doc__.split("\n\n")[1]


class UsageError(Exception):
    pass


def data_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))


def parse(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args:
        key, eq, value = a.partition("=")
        if not eq or not key:
            raise UsageError(f"expected key=value, got {a!r}")
        out[key] = value
    return out


def compose(overrides: list[str]):
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


def validate(opts: dict[str, str]) -> dict:
    from hydra.utils import instantiate

    from scalar.data.merge import clear_cache, read_all, write_json

    out = opts.pop("out", None)
    cfg = compose([f"{k}={v}" for k, v in opts.items()])
    root = _root(cfg)
    corpora = instantiate(cfg.data.corpora, _convert_="all")
    report = {"data": opts.get("data", "synthetic"), "root": str(root)}
    report["splits"] = {}
    for split, spec in corpora.items():
        report["splits"][split] = read_all(spec).counts()
    clear_cache()
    for split, counts in report["splits"].items():
        skips = counts["skips"]
        what = ", ".join(f"{k} {counts[k]}" for k in
                         ("images", "objects", "refs", "sentences", "regions", "relations", "categories"))  # fmt: skip
        print(f"{split}: {what}; skips: {skips if skips else 'none'}")
    path = Path(out) if out else root / "validate.json"
    write_json(path, report)
    print(f"wrote {path}")
    return report


def synth(opts: dict[str, str]) -> dict:
    from hydra.utils import instantiate

    from scalar.data.merge import clear_cache, read_all
    from scalar.data.prepare import ensure_synthetic, ensure_tokenizer

    out = opts.pop("out", None)
    overrides = ["data=synthetic"] + ([f"data.root={out}"] if out else [])
    known = compose(overrides).data.synthetic or {}
    for k, v in opts.items():
        overrides.append(f"{'' if k in known else '+'}data.synthetic.{k}={v}")
    data = compose(overrides).data
    root = Path(str(data.root))
    options = instantiate(data.synthetic, _convert_="all") or {}
    options.pop("root", None)

    def corpora():
        found = [read_all(spec) for spec in instantiate(data.corpora, _convert_="all").values()]
        clear_cache()
        return found

    try:
        built = ensure_synthetic(root, options)
    except TypeError as e:  # an unknown build option
        raise UsageError(str(e)) from None
    if not built:
        print(f"{root / 'manifest.json'} exists: corpus kept (delete {root} to rebuild)")
    if data.tokenizer_path:
        ensure_tokenizer(data.tokenizer_path, corpora, int(data.get("tokenizer_vocab_size", 1024)))
    manifest = json.loads((root / "manifest.json").read_text())
    print(f"synthetic corpus in {root} (tokenizer: {data.tokenizer_path})")
    for split, counts in manifest.get("counts", {}).items():
        print(f"  {split}: {json.dumps(counts, sort_keys=True)}")
    return manifest


def shard(opts: dict[str, str]) -> dict:
    from hydra.utils import instantiate

    from scalar.data.shards import write_shards

    out = opts.pop("out", None)
    if not out:
        raise UsageError("shard needs out=<dir>")
    try:
        size = int(opts.pop("shard_size", 1000))
    except ValueError:
        raise UsageError("shard_size must be an integer") from None
    cfg = compose([f"{k}={v}" for k, v in opts.items()])
    dm = instantiate(cfg.data)
    dm.setup()
    index = write_shards(dm.samples, out, size)
    for split, part in index["splits"].items():
        shards = len({e[0] for e in part["entries"]})
        print(f"{split}: {len(part['tasks'])} samples in {shards} shards")
    print(f"wrote {out}")
    return index


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        opts = parse(rest)
        if command == "synth":
            synth(opts)
        elif command == "validate":
            validate(opts)
        elif command == "shard":
            shard(opts)
        else:
            raise UsageError(f"unknown command {command!r}; valid: synth, validate, shard")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:  # AnnotationError is a ValueError
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
