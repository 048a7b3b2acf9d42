"""The orjson path of ``iter_json_array`` hands anything it cannot vouch for to ``json``."""

from __future__ import annotations

import json

import pytest

from scalar.data.readers.common import load_json
from scalar.data.readers.jsonstream import _long_digits, iter_json_array
from scalar.data.scene import AnnotationError


def _same(path, chunk):
    got = list(iter_json_array(path, chunk=chunk))
    want = json.loads(path.read_text())
    assert repr(got) == repr(want)  # repr: 10**20 and 1e20, nan, -0.0 differ
    return got


@pytest.mark.parametrize("chunk", [5, 64, 1 << 22])
def test_long_integers_nan_and_surrogates_as_json(tmp_path, chunk):
    items = [{"id": 10**20 + 1, "v": [1, 2]}, {"id": -(2**63) - 1}, {"id": 2**64 - 1}]
    items += [{"x": float("nan"), "y": float("-inf")}, {"s": "\ud800 lone"}, {"f": -0.0}]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(items * 3))
    got = _same(path, chunk)
    assert type(got[0]["id"]) is int and got[0]["id"] == 10**20 + 1


@pytest.mark.parametrize("chunk", [7, 50, 4096])
def test_brackets_quotes_and_nested_first_keys(tmp_path, chunk):
    # strings holding brackets, commas and escaped quotes, and rows that open like items
    items = [
        {"image_id": i, "rows": [{"image_id": -i, "p": 'a}, {"image_id": 1} ] [ \\" x'}] * 3}
        for i in range(40)
    ]
    items += [[1, {"a": "]"}], "}", 3, None, {"image_id": "{["}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(items, indent=None if chunk != 50 else 1))
    _same(path, chunk)


def test_long_digits():
    assert _long_digits(b'{"a": 1234567890123456789}')
    assert _long_digits(b'"x" ' * 9 + b"12345678901234567890123")
    assert not _long_digits(b'{"a": 123456789012345678, "b": 1.5}' * 100)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("chunk", [16, 4096])
def test_error_line_after_fast_items(tmp_path, newline, chunk):
    lines = [json.dumps({"image_id": i, "rows": [i, i + 1]}) + "," for i in range(60)]
    lines[45] = lines[45][:-1]  # missing comma after item 45
    path = tmp_path / "c.json"
    with open(path, "w", newline="") as f:
        f.write("[" + newline + newline.join(lines) + newline + "{}]")
    with pytest.raises(AnnotationError) as exc:
        list(iter_json_array(path, chunk=chunk))
    with pytest.raises(AnnotationError) as ref:
        load_json(path)
    assert str(exc.value).split(": not valid")[0] == str(ref.value).split(": not valid")[0]
    assert "row line 48:" in str(exc.value)  # item 45 is on line 47; the next one on 48
