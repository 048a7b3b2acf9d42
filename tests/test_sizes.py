"""Size limits of the package: no constructor over 15 parameters (a dataclass's fields are
its constructor's), no module over 400 lines. Group parameters into small typed settings
objects (e.g. ``scalar.data.settings``) and split modules that grow past the limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scalar"
MAX_PARAMS = 15
MAX_LINES = 400


def _is_dataclass(node: ast.ClassDef) -> bool:
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def init_params(node: ast.FunctionDef) -> int:
    """Parameters of a method, ``self`` left out; ``*args`` and ``**kwargs`` count one each."""
    a = node.args
    n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
    return n - 1 + (a.vararg is not None) + (a.kwarg is not None)


def constructors(source: str) -> list[tuple[str, int]]:
    """``(class name, parameters)`` of each class of ``source`` with an ``__init__`` or
    dataclass fields (annotated class-level names, ``ClassVar`` left out)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                out.append((node.name, init_params(item)))
        if _is_dataclass(node):
            fields = [
                item
                for item in node.body
                if isinstance(item, ast.AnnAssign)
                and "ClassVar" not in ast.unparse(item.annotation)
            ]
            out.append((node.name, len(fields)))
    return out


def test_the_counter_counts_init_parameters_and_dataclass_fields():
    src = (
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "class A:\n    def __init__(self, a, b=1, *args, c, **kw): pass\n"
        "@dataclass(frozen=True)\nclass B:\n    x: int\n    y: int = 0\n    z: ClassVar[int] = 1\n"
    )
    assert sorted(constructors(src)) == [("A", 5), ("B", 2)]


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_module_size_and_constructor_parameters(path: Path):
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {lines} lines > {MAX_LINES}"
    big = [(name, n) for name, n in constructors(text) if n > MAX_PARAMS]
    assert not big, f"{path.relative_to(PACKAGE)}: constructors over {MAX_PARAMS} parameters: {big}"
