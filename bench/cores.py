"""How many cores a command keeps busy: run it, sample the CPU time of its whole process
tree (itself and every child, e.g. DataLoader workers) once a second with psutil, and
print the (user + sys) / wall ratio over the run and over 10-second windows.

    python bench/cores.py [--out timeline.json] -- python train.py ...

The window median is the steady-state figure (corpus loading, start-up and the final
validation are in the whole-run ratio too). Other processes on the machine lower both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import psutil

WINDOW_S = 10


def tree_cpu(proc: psutil.Process, done: dict[int, float]) -> float:
    """user + sys seconds of ``proc`` and its live children, plus what exited children
    were last seen using (``done``: pid -> seconds, updated in place)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            done[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    total = sum(done.values())
    return total


def main(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the timeline and the figures to this JSON file")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command ...")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("give the command after --")
    start = time.monotonic()
    child = subprocess.Popen(cmd)
    proc, seen, timeline = psutil.Process(child.pid), {}, []
    while child.poll() is None:
        try:
            timeline.append((time.monotonic() - start, tree_cpu(proc, seen)))
        except psutil.Error:
            pass
        time.sleep(1.0)
    wall = time.monotonic() - start
    self_and_children = psutil.Process().cpu_times()
    # waited-for descendants, or what the samples saw: a descendant that is never waited
    # for (Lightning's second DDP process) is missing from the first
    cpu = self_and_children.children_user + self_and_children.children_system
    cpu = max(cpu, timeline[-1][1] if timeline else 0.0)
    windows = []
    for i in range(len(timeline)):
        j = next(
            (k for k in range(i, len(timeline)) if timeline[k][0] >= timeline[i][0] + WINDOW_S),
            None,
        )
        if j is None:
            break
        windows.append((timeline[j][1] - timeline[i][1]) / (timeline[j][0] - timeline[i][0]))
    figures = {
        "returncode": child.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cores_busy": round(cpu / wall, 2),
        "cores_busy_window_median": round(statistics.median(windows), 2) if windows else None,
        "cores_busy_window_p90": round(sorted(windows)[int(0.9 * (len(windows) - 1))], 2)
        if windows
        else None,
    }
    print(json.dumps(figures), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**figures, "command": cmd, "timeline": timeline}, f)
    return figures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:])["returncode"])
