#!/usr/bin/env bash
# Run the test suite on a chosen dependency set, in a new virtual environment with an empty
# pip cache (run by hand before moving a bound or relocking; see the README, "Dependencies").
#
#   scripts/check_deps.sh lock     # exactly requirements/dev.lock (what CI installs)
#   scripts/check_deps.sh lowest   # every direct dependency at its lower bound in pyproject.toml
#   scripts/check_deps.sh newest   # the newest releases within pyproject.toml's bounds
#   scripts/check_deps.sh latest   # the newest releases ignoring our upper bounds: passes -> raise them
#
# Extra arguments go to pytest (e.g. `-m "not slow"`). Needs uv for the resolving modes
# (`pip install uv`; it resolves against PyPI). The environment is created under
# ${CHECK_DEPS_DIR:-/tmp/scalar-check-deps}/<mode> and the resolved set is printed first.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-lock}
shift || true
UV=${UV:-uv}
PY=${PYTHON:-python3}
dir=${CHECK_DEPS_DIR:-/tmp/scalar-check-deps}/$mode
rm -rf "$dir" && mkdir -p "$dir"
export PIP_NO_CACHE_DIR=1
reqs=$dir/requirements.txt
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
case $mode in
  lock) cp requirements/dev.lock "$reqs" ;;
  lowest) "$UV" pip compile pyproject.toml --extra dev --resolution lowest-direct \
            --python-version "$pyver" --quiet --no-header -o "$reqs" ;;
  newest) "$UV" pip compile pyproject.toml --extra dev --python-version "$pyver" \
            --quiet --no-header -o "$reqs" ;;
  latest)
    # pyproject's requirements with every upper bound removed
    "$PY" - "$dir/unbounded.in" <<'PYEOF'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
out = []
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    name = re.match(r"[A-Za-z0-9_.\-\[\]]+", req).group(0)
    specs = [s.strip() for s in req[len(name):].split(",") if s.strip()]
    out.append(name + ",".join(s for s in specs if not s.startswith("<")))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PYEOF
    "$UV" pip compile "$dir/unbounded.in" --python-version "$pyver" --quiet --no-header -o "$reqs" ;;
  *) echo "error: unknown mode '$mode' (lock, lowest, newest, latest)" >&2; exit 2 ;;
esac
grep -E '^(torch|torchvision|transformers|lightning|open-clip-torch|open_clip_torch|peft|hydra-core|deepspeed|pytest|torchmetrics|numpy|tokenizers|wandb)==' "$reqs" | sed 's/ .*//'
"$PY" -m venv "$dir/venv"
"$dir/venv/bin/python" -m pip install --quiet -r "$reqs"
"$dir/venv/bin/python" -m pip install --quiet --no-deps -e .
"$dir/venv/bin/python" -m pip freeze > "$dir/freeze.txt"
echo "installed $(wc -l < "$dir/freeze.txt") packages into $dir/venv (list: $dir/freeze.txt)"
OMP_WAIT_POLICY=PASSIVE "$dir/venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
