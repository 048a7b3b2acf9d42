"""Command-line checks run before Hydra: a bad override is one error line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2
_HYDRA_FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}
_HYDRA_FLAGS_WITH_VALUE |= {"--experimental-rerun", "--package", "-p", "--info", "-i"}
_HYDRA_FLAGS_WITH_VALUE |= {"--cfg", "-c"}  # --cfg job|hydra|all: checked like a run


def config_groups(conf_dir: Path) -> dict[str, list[str]]:
    """``{group: [option names]}`` of the config tree (nested groups as ``a/b``)."""
    groups: dict[str, list[str]] = {}
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        names = sorted(f.stem for f in folder.glob("*.yaml"))
        if names:
            groups[folder.relative_to(conf_dir).as_posix()] = names
    return groups


def _overrides(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _HYDRA_FLAGS_WITH_VALUE:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        out.append(arg)
    return out


def _values(override) -> list[str] | None:
    """The option names an override selects, or ``None`` when it is not a plain choice."""
    from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep

    value = override.value()
    if isinstance(value, IntervalSweep | RangeSweep | Glob):
        return None
    if isinstance(value, ChoiceSweep):
        items = value.list
    elif isinstance(value, list):
        items = value  # a list of options (e.g. callbacks=[a,b])
    else:
        items = [value]
    if not all(isinstance(v, str) or v is None for v in items):
        return None
    return [v for v in items if v is not None]


def check_overrides(
    argv: Sequence[str], conf_dir: Path, config_name: str = "train", check_values: bool = True
) -> str | None:
    """One line describing what is wrong with the command line, or ``None`` if it composes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args = _overrides(argv)
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException as err:
        return f"error: bad override: {str(err).splitlines()[0]}"
    groups = config_groups(conf_dir)
    single: list[str] = []
    for o in parsed:
        key = o.key_or_group
        if o.is_delete():
            single.append(o.input_line)
            continue
        if key in groups and not key.startswith("hydra"):
            values = _values(o)
            for v in values or []:
                if v not in groups[key]:
                    valid = ", ".join(groups[key])
                    return f"error: unknown {key} '{v}'; valid names: {valid}"
        if o.is_sweep_override():
            choice = _values(o)
            if not choice:
                continue  # interval/range sweeps are for the sweeper; checked when it runs
            single.append(f"{o.get_key_element()}={choice[0]}")
        else:
            single.append(o.input_line)
    return _compose_error(conf_dir, config_name, single, check_values)


def _compose_error(
    conf_dir: Path, config_name: str, overrides: list[str], values: bool = True
) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
            problem = _value_error(cfg, config_name) if values else None
    except (HydraException, OmegaConfBaseException) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        return "error: " + (" ".join(lines[:2]) if lines else type(err).__name__)
    finally:
        GlobalHydra.instance().clear()
    return f"error: {problem}" if problem else None


def _value_error(cfg, config_name: str) -> str | None:
    """Typed values (``scalar.train.schema``); for train / eval also a missing data root
    and a log folder that cannot be created (the data CLI reports its own)."""
    from omegaconf import OmegaConf

    from scalar.train.schema import check_values

    problem = check_values(cfg)
    if problem or config_name not in ("train", "eval"):
        return problem
    problem = missing_data_root(cfg)
    if problem:
        return problem
    log_dir = OmegaConf.select(cfg, "paths.log_dir", default=None)
    return writable_folder(log_dir, "paths.log_dir") if isinstance(log_dir, str) else None


def missing_data_root(cfg) -> str | None:
    """A ``data.root`` that does not exist: only the default synthetic location is built."""
    import os

    from omegaconf import OmegaConf

    root = OmegaConf.select(cfg, "data.root", default=None)
    if not isinstance(root, str) or os.path.exists(root):
        return None
    data_dir = OmegaConf.select(cfg, "paths.data_dir", default=None)
    synthetic = OmegaConf.select(cfg, "data.synthetic", default=None) is not None
    world = OmegaConf.select(cfg, "data.synthetic.difficulty", default="flat")
    default = isinstance(data_dir, str) and os.path.abspath(root) == os.path.abspath(
        os.path.join(data_dir, f"synthetic_{world}")  # conf/data/synthetic.yaml's root
    )
    if synthetic and default:
        return None  # the embedded corpus is built there on first use
    hint = " (the synthetic corpus is built only under paths.data_dir)" if synthetic else ""
    return f"data.root={root}: no such folder{hint}"


def writable_folder(path: str, key: str) -> str | None:
    """Create ``path`` (as the run will) and write a probe file; one line if that fails."""
    import os
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        return f"{key}={path}: cannot create or write the folder ({err.strerror or err})"
    return None


def guard(argv: Sequence[str], conf_dir: Path, config_name: str = "train") -> None:
    """Exit with code 2 and one line on stderr when the overrides do not compose (also
    with ``--cfg``, which prints the config they compose to)."""
    if any(a in ("-h", "--help", "--hydra-help", "--info", "-i") for a in argv):
        return
    printing = any(a in ("--cfg", "-c") for a in argv)  # shows the config: values unchecked
    message = check_overrides(argv, conf_dir, config_name, check_values=not printing)
    if message:
        print(message, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
