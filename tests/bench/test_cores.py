"""bench/cores.py: CPU time of a command's process tree, its exit status and its timeline."""

import importlib.util
import json
import sys

import pytest

from tests.paths import ROOT


@pytest.fixture(scope="module")
def cores():
    spec = importlib.util.spec_from_file_location("bench_cores", ROOT / "bench/cores.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_counts_the_children_and_keeps_the_exit_status(cores, tmp_path):
    # the command's own child (a grandchild of bench/cores.py) does the work
    work = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(4 * 10**7))'])"
    out = tmp_path / "t.json"
    figures = cores.main(["--out", str(out), "--", sys.executable, "-c", work + "; sys.exit(3)"])
    assert figures["returncode"] == 3
    assert figures["cpu_s"] > 0.1  # the grandchild's loop is counted (resource children times)
    saved = json.loads(out.read_text())
    assert saved["command"][-1].endswith("sys.exit(3)") and saved["cpu_s"] == figures["cpu_s"]
    assert all(
        b[0] >= a[0] and b[1] >= a[1] for a, b in zip(saved["timeline"], saved["timeline"][1:])
    )


def test_needs_a_command(cores):
    with pytest.raises(SystemExit) as e:
        cores.main(["--"])
    assert e.value.code == 2


def test_counts_a_descendant_nobody_waits_for(cores):
    # the command starts a worker and exits without reaping it (as Lightning's CPU DDP
    # launcher leaves its second process): the worker's time never reaches the resource
    # children times, but the per-second samples saw it
    work = (
        "import os, subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'sum(range(8 * 10**7))']); "
        "stat = lambda: open(f'/proc/{p.pid}/stat').read().split()[2]; "
        "[time.sleep(0.1) for _ in range(600) if stat() != 'Z']; "
        "time.sleep(1.5); os._exit(0)"
    )
    figures = cores.main(["--", sys.executable, "-c", work])
    assert figures["returncode"] == 0 and figures["cpu_s"] > 0.5
