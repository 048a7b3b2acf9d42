"""``python -m scalar.data spatial_qa``: the 3-D QA of a ground-plane corpus as JSON lines,
counts per template equal to the lines written, lifting errors against the record, and
one-line usage errors."""

from __future__ import annotations

import json
from collections import Counter

from scalar.data.synth import build_synthetic
from tests.data.test_cli import run

SMALL = dict(n_train=4, n_val=3, n_test=1, n_heldout=1, n_unlabeled=1, image_size=96)


def test_spatial_qa_command_writes_lines_and_counts(tmp_path):
    root = tmp_path / "world"
    build_synthetic(root, workers=1, seed=3, difficulty="default", geometry="ground_plane",
                    **SMALL)  # fmt: skip
    out = tmp_path / "qa" / "spatial.jsonl"
    r = run("spatial_qa", f"data.root={root}", f"out={out}", "source=depth_map",
            "splits=[train,val]", "max_pairs=4")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    summary = json.loads((tmp_path / "qa" / "spatial.jsonl.counts.json").read_text())
    for split in ("train", "val"):
        got = Counter(x["question_type"] for x in rows if x["split"] == split)
        assert summary["questions"][split] == dict(got)
        assert f"{split}: {sum(got.values())} questions" in r.stdout
    assert summary["lifting"] == {"intrinsics: data": 7}
    assert summary["lifting_centre_error"]["median"] <= 0.05
    assert set(summary["baselines"]["val"]) == {"constant", "prior"}
    assert all(x["unit"] == "m" for x in rows if x["question_type"] == "distance_3d")
    bad = run("spatial_qa", f"data.root={root}", "splits=[nope]", f"out={out}")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "unknown split(s) ['nope']" in bad.stderr
    missing = run("spatial_qa", f"data.root={root}")
    assert missing.returncode == 2 and "needs out=" in missing.stderr
