"""Atomic JSON / JSONL writers, ``plain()`` and ``rank_world`` of the ground floor."""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from scalar.core.config import plain
from scalar.core.dist import rank_world
from scalar.core.io import finite, write_json, write_jsonl


def test_write_json_sorted_indented_and_in_new_folders(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    write_json(path, {"b": 1, "a": [1, 2], "p": tmp_path})
    text = path.read_text()
    assert text == json.dumps({"a": [1, 2], "b": 1, "p": str(tmp_path)}, indent=2) + "\n"
    assert not list(path.parent.glob("*.tmp"))


def test_write_jsonl_lines_counts_and_non_finite_floats(tmp_path):
    path = tmp_path / "p.jsonl"
    n = write_jsonl(path, [{"x": math.nan, "b": (1, 2)}, {"y": -math.inf, 3: 0.5}])
    assert n == 2
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"x": None, "b": [1, 2]}, {"y": None, "3": 0.5}]


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [{"old": 1}])

    def records():
        yield {"new": 1}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert path.read_text() == '{"old": 1}\n'


def test_finite_is_recursive():
    assert finite({"a": [1.0, math.nan, (math.inf,)], "b": "x"}) == {
        "a": [1.0, None, [None]],
        "b": "x",
    }


def test_plain_resolves_containers_and_leaves_the_rest():
    cfg = OmegaConf.create({"a": 2, "b": "${a}", "c": [1, {"d": "${a}"}]})
    out = plain(cfg)
    assert out == {"a": 2, "b": 2, "c": [1, {"d": 2}]} and type(out) is dict
    assert plain(OmegaConf.create([1, 2])) == [1, 2]
    assert plain((0.5, 0.25)) == [0.5, 0.25]
    obj = object()
    assert plain(obj) is obj and plain(None) is None and plain({"k": 1}) == {"k": 1}


def test_rank_world_without_a_process_group():
    assert rank_world() == (0, 1)
