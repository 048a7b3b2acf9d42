"""Image-folder reader: header sizes, corrupt files, extensions, order."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from scalar.data.readers.folder import read_image_folder


def _write(path: Path, size: tuple[int, int], fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 90)).save(path, format=fmt)


@pytest.fixture()
def folder(tmp_path: Path) -> tuple[Path, dict[str, tuple[int, int]]]:
    sizes = {
        "b.png": (37, 21),
        "a.jpg": (64, 48),
        "sub/c.JPEG": (20, 90),
        "sub/deeper/d.png": (5, 7),
    }
    for rel, size in sizes.items():
        _write(tmp_path / rel, size, "PNG" if rel.lower().endswith(".png") else "JPEG")
    rng = random.Random(0)
    (tmp_path / "broken.jpg").write_bytes(bytes(rng.randrange(256) for _ in range(512)))
    (tmp_path / "notes.txt").write_text("not an image")
    _write(tmp_path / "skipped.gif", (9, 9), "GIF")  # a real image, extension not asked for
    return tmp_path, sizes


def test_sizes_order_and_skips(folder):
    root, sizes = folder
    corpus = read_image_folder(root)
    assert [s.image.id for s in corpus.scenes] == sorted(sizes)
    for scene in corpus.scenes:
        assert (scene.image.width, scene.image.height) == sizes[scene.image.id]
        assert Path(scene.image.path) == root / scene.image.id
        assert scene.objects == [] and scene.split is None
    assert corpus.skips.as_dict() == {"corrupt_image": 1}
    assert "broken.jpg" in corpus.skips.report()
    assert corpus.name == "folder"


def test_header_only_no_decode(tmp_path):
    # a PNG cut after its header: the size is known, the pixels are not
    _write(tmp_path / "full.png", (300, 200), "PNG")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:64])
    corpus = read_image_folder(tmp_path)
    assert [(s.image.id, s.image.width, s.image.height) for s in corpus.scenes] == [
        ("cut.png", 300, 200),
        ("full.png", 300, 200),
    ]


def test_options(folder):
    root, sizes = folder
    top = read_image_folder(root, recursive=False, name="prompts")
    assert [s.image.id for s in top.scenes] == ["a.jpg", "b.png"] and top.name == "prompts"
    only_png = read_image_folder(root, extensions=("png",))
    assert [s.image.id for s in only_png.scenes] == ["b.png", "sub/deeper/d.png"]
    gif = read_image_folder(root, extensions=(".gif",))
    assert [(s.image.id, s.image.width) for s in gif.scenes] == [("skipped.gif", 9)]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=str(tmp_path)):
        read_image_folder(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="readable"):
        read_image_folder(tmp_path)


def test_weak_captions_from_a_sidecar(folder, tmp_path_factory):
    root, _ = folder
    side = tmp_path_factory.mktemp("q") / "captions.json"
    side.write_text(
        json.dumps(
            {
                "b.png": ["a red circle and a star", " photo of a heart "],
                "sub/c.JPEG": "a square",
                "a.jpg": 3,
                "sub/deeper/d.png": ["ok", ""],
                "gone.png": ["no such image"],
            }
        )
    )
    corpus = read_image_folder(root, captions=side)
    got = {s.image.id: s.meta.get("captions") for s in corpus.scenes}
    assert got["b.png"] == ["a red circle and a star", "photo of a heart"]
    assert got["sub/c.JPEG"] == ["a square"] and got["a.jpg"] is None
    assert got["sub/deeper/d.png"] is None
    assert all(not s.refs and not s.objects for s in corpus.scenes)  # text is image-level only
    assert corpus.skips.counts["bad_caption"] == 2  # a.jpg (not text), d.png (empty text)
    assert corpus.skips.counts["caption_without_image"] == 1


def test_missing_or_malformed_captions_are_one_line_errors(folder, tmp_path):
    root, _ = folder
    with pytest.raises(FileNotFoundError, match="captions file not found"):
        read_image_folder(root, captions=tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_image_folder(root, captions=bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must map image paths"):
        read_image_folder(root, captions=bad)
