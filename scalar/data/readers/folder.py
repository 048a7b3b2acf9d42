"""A folder of unlabeled images (prompts for the RL stage).

Sizes come from each file's header (``PIL.Image.open`` is lazy; pixels are never
decoded here). Files whose header cannot be read are counted as ``corrupt_image``. An optional
``captions`` JSON (``{relative path: text or [texts]}``) gives images weak image-level text,
like web alt-text (no boxes, no objects): ``scene.meta["captions"]``, read by the RL stage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from scalar.data.scene import Corpus, ImageInfo, Scene, Skips


def _image_files(root: Path, extensions: set[str], recursive: bool) -> list[Path]:
    if recursive:
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            found += [Path(dirpath) / f for f in filenames]
    else:
        found = [p for p in root.iterdir()]
    files = [p for p in found if p.suffix.lower() in extensions and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _header_size(path: Path, skips: Skips) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as e:
        skips.add("image_too_large", f"{path} ({e})")
        return None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        skips.add("corrupt_image", f"{path} ({type(e).__name__})")
        return None
    if width <= 0 or height <= 0:
        skips.add("corrupt_image", f"{path} (size {width}x{height})")
        return None
    return int(width), int(height)


def read_captions(path: str | Path, skips: Skips) -> dict[str, list[str]]:
    """``{relative image path: [caption texts]}`` (a value may be one text or a list);
    entries that are not non-empty texts are counted as ``bad_caption`` and dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"captions file not found: {path} (a synthetic corpus built before captions.json: "
            "rebuild it; images alone: set the reader's captions to null)"
        )
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"captions file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"captions file {path} must map image paths to texts")
    out = {}
    for rel, texts in data.items():
        texts = [texts] if isinstance(texts, str) else texts
        ok = isinstance(texts, list) and all(isinstance(t, str) and t.strip() for t in texts)
        if ok:
            out[str(rel)] = [t.strip() for t in texts]
        else:
            skips.add("bad_caption", f"{rel}: {texts!r}"[:120])
    return out


def read_image_folder(
    root: str | Path,
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp"),
    recursive: bool = True,
    name: str = "folder",
    captions: str | Path | None = None,
) -> Corpus:
    """One object-less Scene per readable image under ``root``; ids are relative paths.
    ``captions``: optional JSON of weak text per image (see the module doc); entries
    naming no readable image are counted as ``caption_without_image``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files = _image_files(root, exts, recursive)
    if not files:
        how = "recursively" if recursive else "at the top level (recursive=False)"
        raise ValueError(f"no images with extensions {sorted(exts)} found {how} in {root}")
    skips = Skips()
    texts = read_captions(captions, skips) if captions is not None else {}
    scenes = []
    for path in files:
        size = _header_size(path, skips)
        if size is not None:
            rel = path.relative_to(root).as_posix()
            meta = {"captions": texts.pop(rel)} if rel in texts else {}
            scenes.append(Scene(image=ImageInfo(rel, str(path), *size), meta=meta))
    for rel in texts:
        skips.add("caption_without_image", rel)
    if not scenes:
        raise ValueError(
            f"none of the {len(files)} image files in {root} is readable; " + skips.report()
        )
    return Corpus(name=name, scenes=scenes, skips=skips, meta={"root": str(root)})
