"""Visual Genome region descriptions read into compact per-image records (optionally in a
helper process that reads this file while the main one reads the others).

``region_records`` checks every row (errors and counted skips as the rest of the reader)
and yields ``(image_id, ids, phrases, coords, extra)`` per entry: ``coords`` holds the
integral ``x1 y1 x2 y2`` of each kept region, ``extra`` the ``(index, box)`` of those whose
box is not four integers below 8192 (clipped, fractional or large). ``add_regions`` turns
a record into ``Region``s. Regions need only image sizes, so a large file is read by
``python -m scalar.data.readers.vg_regions`` (started by ``RegionJob``) in parallel: the
records come back through a temporary pickle file. If that process fails for any reason
the file is read again here, which raises the error it met.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalar.data.readers.common import is_strict, malformed, require, strict_rows
from scalar.data.readers.jsonstream import iter_json_array
from scalar.data.readers.vg_rows import FLOATS, MISSING, fast_box, first_key, inside, raw_box
from scalar.data.scene import AnnotationError, Region, Skips, check_box

NAME = "region_descriptions.json"
PARALLEL_BYTES = 32 << 20  # files at least this large are read by a helper process
BATCH = 2000  # entries per pickled batch


def region_records(
    path: Path, sizes: dict[Any, tuple[int, int]], known: bool, skips: Skips
) -> Iterator[tuple]:
    """Check the rows of ``path`` entry by entry; images absent from ``sizes`` are counted
    as ``unknown_image`` when ``known``, else taken with size 0 x 0."""
    for i, entry in enumerate(iter_json_array(path)):
        try:
            require(entry, ("regions",), path, i)
            image_id = first_key(entry, ("image_id", "id"), path, i)
            rows = entry["regions"]
            if not isinstance(rows, list):
                raise AnnotationError(path, i, "'regions' must be a list")
        except AnnotationError as err:
            malformed(err, skips)
            continue
        skips.scope = image_id  # the entry's skips belong to this image (its split)
        size = sizes.get(image_id)
        if size is None:
            if known:
                skips.add("unknown_image", f"{NAME} image {image_id}")
                continue
            size = (0, 0)
        try:
            record = (image_id, *_rows(rows, size[0], size[1], path, i, skips))
        except AnnotationError as err:
            malformed(err, skips)  # the image's regions are left out
            continue
        yield record
    skips.scope = None


def _rows(rows: list, w_: int, h_: int, path: Path, i: int, skips: Skips) -> tuple:
    ids: list = []
    phrases: list[str] = []
    coords = array("H")
    extra: list[tuple[int, tuple]] = []
    fast = 0 < w_ < 8192 and 0 < h_ < 8192
    for j, row in enumerate(rows):
        if fast and type(row) is dict:  # a plain row inside its image
            rid = row.get("region_id", MISSING)
            if rid is MISSING:
                rid = row.get("id", MISSING)
            x, y, w, h, phrase = (row.get("x"), row.get("y"), row.get("width"),
                                  row.get("height"), row.get("phrase"))  # fmt: skip
            if (type(x) is int and type(y) is int and type(w) is int and type(h) is int
                    and 0 <= x and 0 <= y and 0 < w and 0 < h and x + w <= w_
                    and y + h <= h_ and type(phrase) is str and rid is not MISSING):  # fmt: skip
                phrase = phrase.strip()
                if phrase:
                    ids.append(rid)
                    phrases.append(phrase)
                    coords.extend((x, y, x + w, y + h))
                    continue
        kept = _checked(row, w_, h_, path, i, j, skips)
        if kept is not None:
            extra.append((len(ids), kept[1]))
            ids.append(kept[0])
            phrases.append(kept[2])
            coords.extend((0, 0, 0, 0))
    return ids, phrases, coords, extra


def _checked(row: Any, w: int, h: int, path: Path, i: int, j: int, skips: Skips):
    """``(id, box, phrase)`` of any row, or None when it is skipped (and counted)."""
    raw = fast_box(row, ("x", "y", "width", "height")) if type(row) is dict else None
    phrase = row.get("phrase") if raw is not None else None
    rid = MISSING
    if raw is not None:
        rid = row["region_id"] if "region_id" in row else row.get("id", MISSING)
    if rid is MISSING or type(phrase) is not str:  # unusual keys or types: every check
        where = f"{i} region {j}"
        require(row, ("phrase",), path, where)
        rid = first_key(row, ("region_id", "id"), path, where)
        raw = raw_box(row, ("x", "y", "width", "height"), path, where)
        phrase = row["phrase"].strip() if isinstance(row["phrase"], str) else ""
        if not phrase:
            skips.add("empty_region_phrase", f"{path.name} {where}")
            return None
        box = check_box(raw, w, h, skips, f"{path.name} {where}")
        return None if box is None else (rid, box, phrase)
    phrase = phrase.strip()
    if not phrase:
        skips.add("empty_region_phrase", f"{path.name} {i} region {j}")
        return None
    if inside(raw, w, h):
        return rid, raw, phrase
    box = check_box(raw, w, h, skips, f"{path.name} {i} region {j}")
    return None if box is None else (rid, box, phrase)


def add_regions(regions: list[Region], record: tuple) -> None:
    """Append the ``Region``s of one record (boxes of integral pixels share their floats)."""
    _, ids, phrases, coords, extra = record
    it = iter(coords)
    f = FLOATS
    boxes = [(f[a], f[b], f[c], f[d]) for a, b, c, d in zip(it, it, it, it)]
    for k, box in extra:
        boxes[k] = box
    regions.extend(map(Region, ids, boxes, phrases))


class RegionJob:
    """The helper process reading ``root``'s region file; ``records()`` waits for it and
    returns its records and skips, or None when it failed (read the file here then)."""

    def __init__(self, root: Path, sizes: dict[Any, tuple[int, int]]):
        self.dir = Path(tempfile.mkdtemp(prefix="vg_regions_"))
        with open(self.dir / "sizes.pkl", "wb") as f:
            pickle.dump(sizes, f, protocol=pickle.HIGHEST_PROTOCOL)
        cmd = [sys.executable, "-m", __name__, str(root / NAME), str(self.dir)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_src(), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        env["SCALAR_STRICT_ROWS"] = "1" if is_strict() else "0"  # the helper counts rows alike
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    @staticmethod
    def wanted(root: Path, known: bool) -> bool:
        path = root / NAME
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return (
            known and (cpus or 1) > 1 and path.is_file() and path.stat().st_size >= PARALLEL_BYTES
        )

    def records(self) -> Iterator[tuple] | None:
        if self.proc.wait() != 0 or not (self.dir / "done").is_file():
            return None
        return self._load()

    def _load(self) -> Iterator[tuple]:
        with open(self.dir / "records.pkl", "rb") as f:
            while True:
                batch = pickle.load(f)
                if isinstance(batch, Skips):
                    self.skips = batch
                    return
                yield from batch

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _src() -> str:
    """The folder holding the ``scalar`` package, for the helper's imports."""
    return str(Path(__file__).resolve().parents[3])


def main(path: str, out: str) -> None:
    with open(Path(out) / "sizes.pkl", "rb") as f:
        sizes = pickle.load(f)
    skips = Skips()
    batch: list = []
    with open(Path(out) / "records.pkl", "wb") as f:
        for record in region_records(Path(path), sizes, True, skips):
            batch.append(record)
            if len(batch) >= BATCH:
                pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
        pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(skips, f, protocol=pickle.HIGHEST_PROTOCOL)
    (Path(out) / "done").touch()


if __name__ == "__main__":
    import gc

    gc.disable()
    with strict_rows(os.environ.get("SCALAR_STRICT_ROWS") == "1"):
        main(*sys.argv[1:3])
