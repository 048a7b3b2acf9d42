"""Visual Genome v1.2 files of synthetic scenes (see ``writers.py`` for the records and ids)."""

from __future__ import annotations

import json
from pathlib import Path

from scalar.data.synth.writers import SPLITS, dump_json, object_attributes


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


def _vg_box(o: dict) -> dict:
    x, y, w, h = (int(v) for v in o["box"])
    return {"x": x, "y": y, "w": w, "h": h}


def _vg_object(o: dict, with_attributes: bool) -> dict:
    row = {"object_id": o["ann_id"], **_vg_box(o), "names": [o["category"]],
           "synsets": [f"{o['category']}.n.01"]}  # fmt: skip
    if with_attributes:
        row["attributes"] = object_attributes(o)
    return row


def _vg_endpoint(o: dict) -> dict:
    return {"object_id": o["ann_id"], **_vg_box(o), "name": o["category"],
            "synsets": [f"{o['category']}.n.01"]}  # fmt: skip


def relationships_json(records: list[dict]) -> str:
    """The text of ``relationships.json``: the bytes ``dump_json`` writes for the rows
    ``{image_id, relationships: [{relationship_id, predicate, subject, object, synsets}]}``,
    with each object's endpoint encoded once per scene instead of once per relation."""
    predicates: dict[str, str] = {}
    images = []
    for r in records:
        ends = [_json(_vg_endpoint(o)) for o in r["objects"]]
        rows = []
        for rel in r["relations"]:
            p = rel["predicate"]
            if p not in predicates:
                predicates[p] = _json(p)
            rows.append(
                f'{{"relationship_id":{int(rel["relationship_id"])},"predicate":{predicates[p]},'
                f'"subject":{ends[rel["subject"]]},"object":{ends[rel["object"]]},"synsets":[]}}'
            )
        images.append(f'{{"image_id":{int(r["image_id"])},"relationships":[{",".join(rows)}]}}')
    return "[" + ",".join(images) + "]"


def write_vg(out: Path, by_split: dict[str, list[dict]]) -> list[str]:
    """Visual Genome v1.2 files over every labelled split, plus ``splits.json``."""
    records = [r for split in SPLITS for r in by_split[split]]
    image_data, objects, attributes, regions = [], [], [], []
    for r in records:
        iid, objs = r["image_id"], r["objects"]
        image_data.append(
            {
                "image_id": iid,
                "width": r["width"],
                "height": r["height"],
                "url": f"synthetic/VG_100K/{iid}.png",
                "coco_id": iid,
                "flickr_id": None,
                "file_name": r["file_name"],
            }  # fmt: skip
        )
        objects.append({"image_id": iid, "objects": [_vg_object(o, False) for o in objs]})
        attributes.append({"image_id": iid, "attributes": [_vg_object(o, True) for o in objs]})
        regs = []
        boxes = [_vg_box(o) for o in objs]
        for reg in r["regions"]:
            b = boxes[reg["object"]]
            regs.append(
                {
                    "region_id": reg["region_id"],
                    "image_id": iid,
                    "x": b["x"],
                    "y": b["y"],
                    "width": b["w"],
                    "height": b["h"],
                    "phrase": reg["phrase"],
                }  # fmt: skip
            )
        regions.append({"id": iid, "regions": regs})
    files = {
        "image_data": image_data,
        "objects": objects,
        "attributes": attributes,
        "region_descriptions": regions,
    }
    for name, data in files.items():
        dump_json(data, out / "vg" / f"{name}.json")
    (out / "vg" / "relationships.json").write_text(relationships_json(records), encoding="utf-8")
    splits = {str(r["image_id"]): split for split in SPLITS for r in by_split[split]}
    dump_json(splits, out / "splits.json")
    names = ["image_data", "objects", "attributes", "relationships", "region_descriptions"]
    return [f"vg/{n}.json" for n in names] + ["splits.json"]
