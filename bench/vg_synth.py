"""A Visual-Genome-sized synthetic annotation set in the VG v1.2 JSON layout (no images).

Full scale (``scale=1``): 100k images, 35 objects, 20 relationships and 50 region
descriptions per image (3.5M objects, 2M relationships, 5M regions; VG v1.2 has 108k
images, 3.8M objects, 2.3M relationships, 5.4M regions). About 60% of the objects carry
attributes. Files are streamed row by row, so generation needs little memory.

    python bench/vg_synth.py <out_dir> [--scale 1.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

IMAGES = 100_000
OBJECTS, RELATIONS, REGIONS = 35, 20, 50
NAMES = [f"thing{i}" for i in range(2000)]
ATTRS = [f"attr{i}" for i in range(400)]
PREDICATES = ["on", "has", "wearing", "of", "in", "near", "behind", "holding", "above", "with"]
WORDS = [f"w{i}" for i in range(3000)]


def _obj(oid: int, name: str, x: int, y: int, w: int, h: int, extra: str = "") -> str:
    return (
        f'{{"synsets": ["{name}.n.01"], "h": {h}, "object_id": {oid}, "names": ["{name}"], '
        f'"w": {w}, "y": {y}, "x": {x}{extra}}}'
    )


def generate(out: Path, scale: float = 1.0, seed: int = 0, linked=None) -> dict:
    """Write the five files under ``out``; returns the counts written.

    ``linked(i)`` (optional, ``bench/join_synth.py``) gives image ``i`` a COCO id: None,
    or ``(coco_id, width, height, [(name, x, y, w, h), ...])``, objects listed first."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    n_images = max(1, round(IMAGES * scale))
    files = {
        k: open(out / f"{k}.json", "w", encoding="utf-8")
        for k in ("image_data", "objects", "attributes", "relationships", "region_descriptions")
    }
    for f in files.values():
        f.write("[")
    counts = dict(images=n_images, objects=0, attributes=0, relationships=0, regions=0)
    oid = rid = relid = 0
    rand, choice = rng.random, rng.choice
    for i in range(1, n_images + 1):
        sep = "" if i == 1 else ", "
        W, H = choice((800, 640, 500, 1024)), choice((600, 480, 375, 768))
        link = linked(i) if linked is not None else None
        coco_id, first = ("null", []) if link is None else (link[0], link[3])
        if link is not None:
            W, H = link[1], link[2]
        url = f"https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg"
        files["image_data"].write(
            f'{sep}{{"width": {W}, "url": "{url}", "height": {H}, "image_id": {i}, '
            f'"coco_id": {coco_id}, "flickr_id": null}}'
        )
        objs, attr_rows = [], []
        for k in range(OBJECTS):
            oid += 1
            w, h = 1 + int(rand() * (W - 1)), 1 + int(rand() * (H - 1))
            x, y = int(rand() * (W - w)), int(rand() * (H - h))
            name = choice(NAMES)
            if k < len(first):
                name, x, y, w, h = first[k]
            objs.append((oid, name, x, y, w, h))
            if rand() < 0.6:
                attrs = ", ".join(f'"{choice(ATTRS)}"' for _ in range(1 + int(rand() * 2)))
                attr_rows.append(_obj(oid, name, x, y, w, h, f', "attributes": [{attrs}]'))
        counts["objects"] += len(objs)
        counts["attributes"] += len(attr_rows)
        body = ", ".join(_obj(*o) for o in objs)
        files["objects"].write(f'{sep}{{"image_id": {i}, "objects": [{body}]}}')
        body = ", ".join(attr_rows)
        files["attributes"].write(f'{sep}{{"image_id": {i}, "attributes": [{body}]}}')
        rels = []
        for _ in range(RELATIONS):
            relid += 1
            s, o = choice(objs), choice(objs)
            rels.append(
                f'{{"predicate": "{choice(PREDICATES)}", "object": {_obj(*o)}, '
                f'"relationship_id": {relid}, "synsets": [], "subject": {_obj(*s)}}}'
            )
        counts["relationships"] += len(rels)
        body = ", ".join(rels)
        files["relationships"].write(f'{sep}{{"relationships": [{body}], "image_id": {i}}}')
        regs = []
        for _ in range(REGIONS):
            rid += 1
            w, h = 1 + int(rand() * (W - 1)), 1 + int(rand() * (H - 1))
            x, y = int(rand() * (W - w)), int(rand() * (H - h))
            phrase = " ".join(choice(WORDS) for _ in range(2 + int(rand() * 6)))
            regs.append(
                f'{{"region_id": {rid}, "width": {w}, "height": {h}, "image_id": {i}, '
                f'"phrase": "{phrase}", "y": {y}, "x": {x}}}'
            )
        counts["regions"] += len(regs)
        body = ", ".join(regs)
        files["region_descriptions"].write(f'{sep}{{"regions": [{body}], "id": {i}}}')
    for f in files.values():
        f.write("]")
        f.close()
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t = time.perf_counter()
    counts = generate(a.out, a.scale, a.seed)
    print(json.dumps({**counts, "seconds": round(time.perf_counter() - t, 1)}))


if __name__ == "__main__":
    main()
