"""``python -m scalar.data`` (a Hydra app): synth and validate, counts checked against the raw
files; Hydra's override grammar, missing splits, strict mode and one-line errors."""

import json
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from scalar.rl.proposal_quality import corpus_proposal_summary
from tests.paths import REALDATA

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(p.stem for p in (ROOT / "conf" / "data").glob("*.yaml"))  # every data config


def run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "scalar.data", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "synthetic"
    sizes = {"n_train": 6, "n_val": 3, "n_test": 2, "n_heldout": 3, "n_unlabeled": 2}
    sizes["image_size"] = 64
    r = run("synth", f"out={out}", *(f"data.synthetic.{k}={v}" for k, v in sizes.items()))
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
    # the val split's connected-component proposal IoU, as proposal_quality computes it
    found = corpus_proposal_summary(root, "val")
    assert found["objects"] == manifest["counts"]["val"]["objects"]
    assert (
        f"val proposals (connected components): mean best IoU {found['mean_best_iou']}, "
        f"share IoU >= 0.5 {found['share_iou_ge_0_5']} over {found['objects']} objects"
    ) in stdout
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
    assert (
        r.returncode == 2
        and r.stderr.strip() == "error: bad override: Error parsing override 'oops'"
    )
    r = run("synth", f"out={tmp_path / 's'}", "+data.synthetic.colours=9")  # not a build option
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "colours" in r.stderr


# ---------------------------------------------------------------- Hydra grammar, real COCO


def one_error_line(r, code: int) -> str:
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture
def coco_val_only(tmp_path):
    """A COCO root holding only val2017 annotations (the real small sample) and one image."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    raw = REALDATA / "coco" / "airo_instances_val2017_small.json"
    (root / "annotations" / "instances_val2017.json").write_bytes(raw.read_bytes())
    (root / "val2017").mkdir()
    for image in (REALDATA / "coco" / "images").iterdir():
        (root / "val2017" / image.name).write_bytes(image.read_bytes())
    data = json.loads(raw.read_text())
    have = {p.name for p in (root / "val2017").iterdir()}
    ids = {im["id"] for im in data["images"] if im["file_name"] in have}
    want = {"images": len(ids), "categories": len({c["id"] for c in data["categories"]}),
            "objects": sum(a["image_id"] in ids for a in data["annotations"]),
            "missing_image": len(data["images"]) - len(ids)}  # fmt: skip
    return root, want


def test_validate_coco_with_only_val_annotations(coco_val_only, tmp_path):
    root, want = coco_val_only
    out = tmp_path / "v.json"
    r = run("validate", "data=coco", f"data.root={root}", f"out={out}")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    val = report["splits"]["val"]
    assert set(report["splits"]) == {"val"}
    assert {k: val[k] for k in ("images", "categories", "objects")} == {
        k: want[k] for k in ("images", "categories", "objects")
    }
    assert val["skips"]["missing_image"] == want["missing_image"] == 2
    missing = root / "annotations" / "instances_train2017.json"
    assert report["missing"] == {"train": f"annotation file not found: {missing}"}
    train_lines = [ln for ln in r.stdout.splitlines() if ln.startswith("train:")]
    assert len(train_lines) == 1 and "not validated" in train_lines[0]
    assert str(missing) in train_lines[0]
    # strict: the missing split is an error, one line, exit 1, no report
    r = run(
        "validate", "data=coco", f"data.root={root}", f"out={tmp_path / 's.json'}", "strict=true"
    )
    line = one_error_line(r, 1)
    assert "split train" in line and str(missing) in line
    assert not (tmp_path / "s.json").exists()


def test_deleting_and_nulling_splits(coco_val_only, tmp_path):
    root, want = coco_val_only
    out = tmp_path / "v.json"
    r = run("validate", "data=coco", f"data.root={root}", f"out={out}", "~data.corpora.train",
            "strict=true")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert set(report["splits"]) == {"val"} and report["missing"] == {}
    assert report["splits"]["val"]["images"] == want["images"]
    r = run("validate", "data=coco", f"data.root={root}", f"out={out}", "data.corpora.train=null")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["disabled"] == ["train"] and set(report["splits"]) == {"val"}
    # nothing left to read: one line, exit 1
    r = run(
        "validate", "data=coco", f"data.root={root}", "~data.corpora.train", "data.corpora.val=null"
    )
    assert "no split could be read" in one_error_line(r, 1)


def test_synthetic_unlabeled_null_and_added_key(corpus, tmp_path):
    root, _ = corpus
    out = tmp_path / "v.json"
    r = run("validate", f"data.root={root}", f"out={out}", "data.corpora.unlabeled=null",
            "~data.corpora.heldout", "+data.note=checked")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert set(report["splits"]) == {"train", "val", "test"}
    assert report["disabled"] == ["unlabeled"]
    got = {s: {k: v for k, v in c.items() if k != "corpus"} for s, c in report["splits"].items()}
    want = expected_counts(root)
    assert got == {s: want[s] for s in ("train", "val", "test")}


def test_help_cfg_and_usage_errors(tmp_path):
    r = run("--help")
    assert (
        r.returncode == 0
        and "python -m scalar.data {synth,validate,shard,spatial_qa,concepts}" in r.stdout
    )
    assert "data: " + ", ".join(NAMES) in r.stdout
    r = run("validate", "--cfg", "job", "data=coco", "data.root=/x", "~data.corpora.train")
    assert r.returncode == 0, r.stderr
    from omegaconf import OmegaConf

    job = OmegaConf.create(r.stdout)
    assert job.command == "validate" and list(job.data.corpora) == ["val"]
    assert job.data.root == "/x"
    assert "unknown model 'nope'" in one_error_line(run("--cfg", "job", "model=nope"), 2)
    assert "unknown command 'nope'" in one_error_line(run("nope", "data=coco"), 2)
    assert "a command is required" in one_error_line(run("data=coco"), 2)
    line = one_error_line(run("validate", "data.nokey=1"), 2)
    assert "+data.nokey=1" in line  # Hydra's hint to add a key


def test_train_cfg_job_bad_group_is_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "train.py", "--cfg", "job", "model=nope"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    line = one_error_line(r, 2)
    names = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    assert line == f"error: unknown model 'nope'; valid names: {', '.join(names)}"


def test_check_decode_counts_broken_images(coco_val_only, tmp_path):
    """``check_decode=true`` decodes every image: a truncated file is a counted
    ``corrupt_image`` skip of its split, without it the file is only checked to exist."""
    root, want = coco_val_only
    image = next((root / "val2017").iterdir())
    image.write_bytes(image.read_bytes()[:64])  # truncated: exists but cannot be decoded
    out = tmp_path / "v.json"
    r = run("validate", "data=coco", f"data.root={root}", f"out={out}", "~data.corpora.train")
    assert r.returncode == 0, r.stderr
    assert "corrupt_image" not in json.loads(out.read_text())["splits"]["val"]["skips"]
    r = run("validate", "data=coco", f"data.root={root}", f"out={out}", "~data.corpora.train",
            "check_decode=true")  # fmt: skip
    assert r.returncode == 0, r.stderr
    skips = json.loads(out.read_text())["splits"]["val"]["skips"]
    assert skips["corrupt_image"] == 1 and skips["missing_image"] == want["missing_image"]
