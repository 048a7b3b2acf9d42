"""What the synthetic Visual Genome file says about each object: by default the same ids
and boxes as the COCO / RefCOCO files; with ``vg_own_ids`` its own object ids (as real VG
and COCO share none) and with ``vg_jitter`` boxes moved as real VG and COCO boxes of one
object differ. Either makes the RefCOCO-VG link a matter for the corpus join
(``scalar.data.join``) instead of shared ids. Both off: the files are byte-identical to a
build without them.
"""

from __future__ import annotations

import random

VG_OPTIONS = ("vg_own_ids", "vg_jitter")  # build options (build_synthetic) handled here
VG_ID_OFFSET = 10_000_000  # VG object id = offset + the COCO annotation id
JITTER_SEED = 0x56474A  # mixed with the corpus seed: the jitter does not move other draws


def check_vg_options(vg_own_ids: bool = False, vg_jitter: float = 0.0) -> None:
    if not 0.0 <= float(vg_jitter) < 0.5:
        raise ValueError(f"vg_jitter (box side fraction) must be in [0, 0.5): {vg_jitter}")


def jitter_box(box, sigma: float, width: int, height: int, rng: random.Random) -> list[int]:
    """``[x, y, w, h]`` with each edge moved by a Gaussian of ``sigma`` times the box side,
    rounded and kept inside the image with sides of at least one pixel."""
    x, y, w, h = (float(v) for v in box)
    x1 = x + rng.gauss(0.0, sigma * w)
    y1 = y + rng.gauss(0.0, sigma * h)
    x2 = x + w + rng.gauss(0.0, sigma * w)
    y2 = y + h + rng.gauss(0.0, sigma * h)
    x1, x2 = sorted((min(max(round(x1), 0), width - 1), min(max(round(x2), 1), width)))
    y1, y2 = sorted((min(max(round(y1), 0), height - 1), min(max(round(y2), 1), height)))
    return [x1, y1, max(x2 - x1, 1), max(y2 - y1, 1)]


def vg_view(
    by_split: dict[str, list[dict]], seed: int, vg_own_ids: bool = False, vg_jitter: float = 0.0
) -> dict[str, list[dict]]:
    """The records the VG writer gets (``by_split`` itself when both options are off)."""
    check_vg_options(vg_own_ids, vg_jitter)
    if not vg_own_ids and not vg_jitter:
        return by_split
    rng = random.Random(seed * 1_000_003 + JITTER_SEED)
    out: dict[str, list[dict]] = {}
    for split, records in by_split.items():
        out[split] = []
        for r in records:
            objects = []
            for o in r["objects"]:
                o = dict(o)
                if vg_own_ids:
                    o["ann_id"] = VG_ID_OFFSET + int(o["ann_id"])
                if vg_jitter:
                    o["box"] = jitter_box(o["box"], vg_jitter, r["width"], r["height"], rng)
                objects.append(o)
            out[split].append({**r, "objects": objects})
    return out
