"""Every user mistake of issue 15 (items 7-10) is one line and a documented exit code:
2 for usage (config values, checkpoints, output folders), 1 for data (annotations,
full disk); checkpoints are checked before the corpus loads."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from scalar.data.scene import AnnotationError
from scalar.train.checkpoint import (
    AtomicCheckpointIO,
    UserError,
    check_checkpoint,
    clean_stale_tmp,
)
from scalar.train.cli import check_overrides
from scalar.train.errors import run_guarded
from scalar.train.run import train
from tests.conftest import CONF, ROOT


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.max_steps=abc", "trainer.max_steps"),
        ("optim.lr=abc", "optim.lr"),
        ("data.loader.batch_size=0", "data.loader.batch_size"),
        ("data.loader.batch_size=-1", "data.loader.batch_size"),
        ("nan_policy=maybe", "nan_policy"),
        ("paths.log_dir=/proc/no_such/logs", "paths.log_dir"),
        ("data.root=/no/such/corpus/root", "data.root"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(override, key):
    message = check_overrides([override], CONF)
    assert message is not None and "\n" not in message
    assert message.startswith(f"error: {key}=")


def test_the_default_synthetic_location_may_be_missing(tmp_path):
    assert check_overrides([f"paths.data_dir={tmp_path / 'fresh'}"], CONF) is None


def test_bad_value_exits_2_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "data.loader.batch_size=-1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["error: data.loader.batch_size=-1 is not valid: it must be an integer >= 1"]


def _bad_checkpoints(folder: Path) -> dict[str, Path]:
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, buf)
    garbage = b"\x80\x04 a pickle header, then nothing a checkpoint holds " * 64
    files = {"empty": b"", "garbage": garbage, "truncated": buf.getvalue()[:2000]}
    out = {}
    for name, data in files.items():
        out[name] = folder / f"{name}.ckpt"
        out[name].write_bytes(data)
    return out


def test_check_checkpoint_names_the_file(tmp_path):
    for name, path in _bad_checkpoints(tmp_path).items():
        with pytest.raises(UserError) as err:
            check_checkpoint(path, "init_from")
        assert str(err.value).startswith(f"init_from={path}: "), name
    ok = tmp_path / "ok.ckpt"
    torch.save({"a": 1}, ok)
    check_checkpoint(ok)  # a real one passes
    torch.save({"a": 1}, ok, _use_new_zipfile_serialization=False)
    check_checkpoint(ok)  # and one in torch's legacy format
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("x.txt", "hi")
    with pytest.raises(UserError, match="not a torch checkpoint"):
        check_checkpoint(tmp_path / "other.zip")


@pytest.mark.parametrize("key", ["ckpt_path", "init_from"])
def test_a_bad_checkpoint_stops_train_before_the_corpus_loads(
    make_cfg, tmp_path, monkeypatch, capsys, key
):
    import scalar.data.datamodule as dm

    def no_corpus(*args, **kwargs):
        raise AssertionError("the corpus was loaded before the checkpoint was checked")

    monkeypatch.setattr(dm.SceneDataModule, "__init__", no_corpus)
    bad = _bad_checkpoints(tmp_path)["truncated"]
    with pytest.raises(SystemExit) as exit_:
        run_guarded(train, make_cfg(f"{key}={bad}"))
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {key}={bad}: truncated or corrupt")


def test_a_bad_eval_checkpoint_is_one_line(tmp_path, capsys):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from scalar.train.evaluate import evaluate

    bad = _bad_checkpoints(tmp_path)["garbage"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "eval", [f"ckpt={bad}", f"paths.output_dir={tmp_path / 'out'}", "logger=none"]
        )
    with pytest.raises(SystemExit) as exit_:
        run_guarded(evaluate, cfg)
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert err == [f"error: ckpt={bad}: not a checkpoint file (neither a torch zip nor a pickle)"]


def test_annotation_errors_exit_1(capsys):
    def read():
        raise AnnotationError(
            "refs(unc).p", "-", "not a readable pickle (EOFError: Ran out of input)"
        )

    with pytest.raises(SystemExit) as exit_:
        run_guarded(read)
    assert exit_.value.code == 1
    assert (
        capsys.readouterr().err
        == "error: refs(unc).p: row -: not a readable pickle (EOFError: Ran out of input)\n"
    )


def test_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        run_guarded(lambda: 1 / 0)


def test_disk_full_while_saving_is_one_line_and_keeps_the_old_checkpoint(
    tmp_path, monkeypatch, capsys
):
    import shutil

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(SystemExit) as exit_:
        run_guarded(AtomicCheckpointIO().save_checkpoint, {"step": 2}, target)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"error: no space left on device: {target}\n"
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}  # the old one is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no partial file


def test_oserror_codes():
    from scalar.train.errors import classify

    assert classify(OSError(errno.ENOSPC, "No space left on device", "/x"))[1] == 1
    assert classify(PermissionError(errno.EACCES, "Permission denied", "/x")) == (
        "cannot write: /x (Permission denied)",
        2,
    )


def test_checkpoints_follow_the_umask_and_stale_temp_files_go(tmp_path):
    old = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "last.ckpt")
    finally:
        os.umask(old)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o644
    stale = tmp_path / ".last.ckpt.k3j2h1.tmp"
    stale.write_bytes(b"partial")
    assert clean_stale_tmp(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
