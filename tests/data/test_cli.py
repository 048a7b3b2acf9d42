"""``python -m scalar.data``: synth and validate, counts checked against the raw files."""

import json
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["coco", "folder", "lvis", "refcoco", "synthetic", "vg"]


def run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "scalar.data", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "synthetic"
    sizes = ["n_train=6", "n_val=3", "n_test=2", "n_heldout=3", "n_unlabeled=2", "image_size=64"]
    r = run("synth", f"out={out}", *sizes)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def expected_counts(root: Path) -> dict:
    """Counts computed straight from the files the builder wrote."""
    load = lambda p: json.loads((root / p).read_text())  # noqa: E731
    inst = load("refcoco/synthetic/instances.json")
    with open(root / "refcoco/synthetic/refs(unc).p", "rb") as f:
        refs = pickle.load(f)
    regions = {e["id"]: len(e["regions"]) for e in load("vg/region_descriptions.json")}
    rels = {e["image_id"]: len(e["relationships"]) for e in load("vg/relationships.json")}
    vg_names = {o["names"][0] for e in load("vg/objects.json") for o in e["objects"]}
    n_cats = len({c["name"] for c in inst["categories"]} | vg_names)
    objects = Counter(a["image_id"] for a in inst["annotations"])
    out = {}
    for split in ("train", "val", "test", "heldout"):
        mine = [r for r in refs if r["split"] == split]
        images = {r["image_id"] for r in mine}
        out[split] = {
            "images": len(images),
            "objects": sum(objects[i] for i in images),
            "refs": len(mine),
            "sentences": sum(len(r["sentences"]) for r in mine),
            "regions": sum(regions.get(i, 0) for i in images),
            "relations": sum(rels.get(i, 0) for i in images),
            "categories": n_cats,
            "skips": {},
        }
    n_unlabeled = len(list((root / "unlabeled").glob("*.png")))
    out["unlabeled"] = {"images": n_unlabeled, "objects": 0, "refs": 0, "sentences": 0,
                        "regions": 0, "relations": 0, "categories": 0, "skips": {}}  # fmt: skip
    return out


def test_synth_builds_corpus_and_tokenizer(corpus):
    root, stdout = corpus
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["counts"]["train"]["images"] == 6
    assert (root / "tokenizer" / "tokenizer.json").is_file()
    assert '"images": 6' in stdout
    again = run("synth", f"out={root}")  # existing corpus: kept, not rebuilt
    assert again.returncode == 0 and "corpus kept" in again.stdout


def test_validate_counts_equal_the_files(corpus, tmp_path):
    root, _ = corpus
    r = run("validate", "data=synthetic", f"data.root={root}")
    assert r.returncode == 0, r.stderr
    report = json.loads((root / "validate.json").read_text())
    got = {s: {k: v for k, v in c.items() if k != "corpus"} for s, c in report["splits"].items()}
    assert got == expected_counts(root)
    assert "train: images 6," in r.stdout
    out = tmp_path / "v.json"
    assert run("validate", f"data.root={root}", f"out={out}").returncode == 0
    assert json.loads(out.read_text())["splits"] == report["splits"]


def test_unknown_data_name_is_one_line(corpus):
    root, _ = corpus
    r = run("validate", "data=nope", f"data.root={root}")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0]
    assert lines[0].endswith(", ".join(NAMES))


def test_missing_root_and_bad_arguments(tmp_path):
    r = run("validate", "data=synthetic", f"data.root={tmp_path / 'absent'}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "absent") in r.stderr
    r = run("validate", "oops")
    assert r.returncode == 2 and "key=value" in r.stderr
    r = run("synth", f"out={tmp_path / 's'}", "colours=9")  # not a build option
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "colours" in r.stderr
