"""The streaming JSON array reader equals ``json.load`` and fails like ``load_json``."""

from __future__ import annotations

import json
import random

import pytest

from scalar.data.readers.jsonstream import iter_json_array
from scalar.data.scene import AnnotationError


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.randint(-(10**12), 10**12)
    if kind == 1:
        return rng.uniform(-1e3, 1e3)
    if kind == 2:
        return rng.choice(["", "a b", 'q"uo\\te', "ünï", "\n"])
    if kind == 3:
        return rng.choice([None, True, False])
    if kind in (4, 5):
        return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randint(0, 4))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("chunk", [1, 3, 17, 4096])
def test_equals_json_load(tmp_path, seed, chunk):
    rng = random.Random(seed)
    items = [_value(rng) for _ in range(rng.randint(0, 30))]
    path = tmp_path / "a.json"
    indent = rng.choice([None, 1, 2])
    path.write_text(("\n " if seed % 2 else "") + json.dumps(items, indent=indent) + "\n")
    assert list(iter_json_array(path, chunk=chunk)) == json.loads(path.read_text())


@pytest.mark.parametrize("chunk", [1, 5, 4096])
@pytest.mark.parametrize(
    "text,line",
    [
        ('[{"a": 1},\n {"b": 2}', 2),  # truncated
        ('[{"a": 1},\n\n {"b": 2}]  x', 3),  # trailing garbage
        ('[{"a": 1}\n {"b": 2}]', 2),  # missing comma
        ('[{"a": 1},\n]', 2),  # trailing comma
        ("", 1),  # empty file
        ('{"a": [', 1),  # truncated, not an array
    ],
)
def test_malformed_names_file_and_line(tmp_path, text, line, chunk):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AnnotationError) as exc:
        list(iter_json_array(path, chunk=chunk))
    assert str(exc.value).startswith(f"{path}: row line {line}: not valid JSON")


def test_not_an_array_and_missing(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"a": 1}')
    with pytest.raises(AnnotationError, match="row top level: expected a list"):
        list(iter_json_array(path))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        list(iter_json_array(tmp_path / "nope.json"))
