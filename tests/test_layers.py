"""The package layers of ``scalar`` (drawn in docs/design.md, "Layers").

A package imports only packages of lower layers; two packages of one layer do not import
each other. ``train`` is the application: no library package imports it (only the
commands do: ``train.py``, ``eval.py``, ``predict.py``, ``bench/``, ``scripts/`` and a
package's ``__main__``, which is a command run with ``python -m``, never imported by the
library). A name starting with ``_`` is private to its package. Every import counts:
module level, inside functions, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "scalar"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),  # tokens, box codecs, tokenizer loading, batch contract, pictures, errors, io
    ("data", "model"),  # corpora -> samples -> batches; the network
    ("losses", "metrics"),  # objectives and scores over batches and model outputs
    ("rewards",),  # RL rewards (text metrics' tokenisation, box IoU)
    ("rl",),  # RL algorithms, sampling, rollouts, prompt sources
    ("eval",),  # evaluation library: eval loaders, prediction records, reports
    ("stages",),  # Lightning modules: align, RL, evaluation
    ("train",),  # the application: run, commands, callbacks, checkpoints, strategies
)
APP = "train"
ENTRY = "__main__"  # a command (python -m scalar.<package>), not a library module


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str | None:
    """``scalar.data.readers.coco`` -> ``data``; ``scalar`` itself -> ``None``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports(path: Path, root: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` of every ``scalar`` import in ``path``."""
    name = module_name(path, root)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out += [(target, a.name, node.lineno) for a in node.names]
    top = root.name
    return [(m, n, ln) for m, n, ln in out if m == top or m.startswith(top + ".")]


def private_attributes(path: Path, root: Path) -> list[tuple[str, str, int]]:
    """``(module, attribute, line)`` for ``m._x`` where ``m`` is a module bound by an import."""
    top = root.name
    bound: dict[str, str] = {}
    tree = ast.parse(path.read_text(), str(path))
    for module, name, _ in imports(path, root):
        if name is None:
            continue
        sub = f"{module}.{name}"
        if (root.parent / (sub.replace(".", "/") + ".py")).is_file() or (
            root.parent / sub.replace(".", "/") / "__init__.py"
        ).is_file():
            bound[name] = sub
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                if a.asname and isinstance(node, ast.Import) and a.name.startswith(top + "."):
                    bound[a.asname] = a.name
                elif a.asname and isinstance(node, ast.ImportFrom) and a.name in bound:
                    bound[a.asname] = bound[a.name]
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            out.append((bound[node.value.id], node.attr, node.lineno))
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def violations(root: Path, layers=LAYERS, app: str = APP) -> list[str]:
    """Every import of the package at ``root`` that breaks the layering, one line each."""
    level = {pkg: i for i, layer in enumerate(layers) for pkg in layer}
    out: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        src = module_name(path, root)
        where = f"{path.relative_to(root.parent)}"
        pkg = package_of(src)
        if pkg is not None and pkg not in level:
            out.append(f"{where}: package '{pkg}' is in no layer (declare it in LAYERS)")
            continue
        entry = src.split(".")[-1] == ENTRY
        for target, name, line in imports(path, root):
            full = f"{target}.{name}" if name else target
            dst = package_of(full)
            if name and name.startswith("_") and not name.startswith("__") and dst != pkg:
                out.append(f"{where}:{line}: imports private {full} from package '{dst}'")
            if ENTRY in full.split(".") and not entry:
                out.append(f"{where}:{line}: imports the command {full}")
            if dst is None or dst == pkg or entry:
                continue
            if pkg is None:
                out.append(f"{where}:{line}: the package root imports {full}")
                continue
            if dst not in level:
                out.append(f"{where}:{line}: imports {full} of undeclared package '{dst}'")
                continue
            graph.setdefault(pkg, set()).add(dst)
            if dst == app:
                out.append(f"{where}:{line}: library package '{pkg}' imports the app: {full}")
            elif level[dst] >= level[pkg]:
                out.append(
                    f"{where}:{line}: '{pkg}' (layer {level[pkg]}) imports {full} "
                    f"('{dst}', layer {level[dst]})"
                )
        for module, attr, line in private_attributes(path, root):
            if package_of(module) != pkg:
                out.append(f"{where}:{line}: uses private {module}.{attr}")
    cycle = find_cycle(graph)
    if cycle:
        out.append("package cycle: " + " -> ".join(cycle))
    return out


def test_scalar_follows_the_layers():
    found = violations(ROOT)
    assert not found, "layering broken:\n" + "\n".join(found)


def test_every_package_is_declared_once():
    declared = [p for layer in LAYERS for p in layer]
    assert len(declared) == len(set(declared))
    present = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert present == set(declared)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in root.rglob("*.py")}:
        (folder / "__init__.py").touch()
    return root


LOW_HIGH = (("low",), ("mid_a", "mid_b"), ("app",))


def test_the_checker_accepts_downward_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "low/a.py": "X = 1\n",
            "mid_a/b.py": "from pkg.low.a import X\nfrom ..low import a\n",
            "mid_a/__main__.py": "from pkg.app.run import main\n",
            "app/run.py": "from pkg.mid_a.b import X\ndef main(): pass\n",
        },
    )
    assert violations(root, LOW_HIGH, "app") == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # upward, inside a function (the model -> data shape of the old cycle)
        ({"low/a.py": "def f():\n    from pkg.mid_a.b import Y\n", "mid_a/b.py": "Y = 1\n"},
         "'low' (layer 0) imports pkg.mid_a.b.Y ('mid_a', layer 1)"),
        # sideways within one layer
        ({"mid_a/b.py": "import pkg.mid_b.c\n", "mid_b/c.py": ""},
         "'mid_a' (layer 1) imports pkg.mid_b.c ('mid_b', layer 1)"),
        # the library importing the application, through a relative import
        ({"mid_b/c.py": "from ..app import run\n", "app/run.py": ""},
         "library package 'mid_b' imports the app: pkg.app.run"),
        # a private name across packages
        ({"low/a.py": "def _rank(): pass\n", "mid_a/b.py": "from pkg.low.a import _rank\n"},
         "imports private pkg.low.a._rank from package 'low'"),
        # a private attribute of a module of another package
        ({"low/a.py": "def _rank(): pass\n",
          "mid_a/b.py": "from pkg.low import a\nr = a._rank()\n"},
         "uses private pkg.low.a._rank"),
        # the library importing a command
        ({"mid_a/__main__.py": "", "mid_b/c.py": "from pkg.mid_a.__main__ import main\n"},
         "imports the command pkg.mid_a.__main__.main"),
        # a package nobody placed in a layer
        ({"extra/d.py": ""}, "package 'extra' is in no layer"),
    ],
)  # fmt: skip
def test_the_checker_reports_each_kind_of_violation(tmp_path, files, expected):
    found = violations(_tree(tmp_path, files), LOW_HIGH, "app")
    assert any(expected in line for line in found), found


def test_the_checker_reports_a_cycle(tmp_path):
    layers = (("one", "two"),)  # both in one layer: the cycle is reported besides
    root = _tree(
        tmp_path, {"one/a.py": "from pkg.two import b\n", "two/b.py": "import pkg.one.a\n"}
    )
    found = violations(root, layers, "app")
    assert "package cycle: one -> two -> one" in found, found


def test_find_cycle_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
