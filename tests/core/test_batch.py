"""Row selection on batches of the batch contract: items follow their rows, images too."""

from __future__ import annotations

import pytest
import torch

from scalar.core.batch import row_image, rows_by_task, select_rows


def _batch():
    return {
        "input_ids": torch.tensor([[1, 2], [3, 4], [5, 6]]),
        "images": torch.arange(3.0).view(3, 1),
        "target_boxes": torch.tensor([[0.0] * 4, [1.0] * 4, [2.0] * 4, [3.0] * 4]),
        "target_batch": torch.tensor([0, 2, 2, 1]),
        "region_boxes": torch.tensor([[9.0] * 4]),
        "region_batch": torch.tensor([1]),
        "concept_ids": torch.tensor([7, 8, 9]),
        "concept_batch": torch.tensor([2, 0, 2]),
        "samples": ["s0", "s1", "s2"],
        "note": "kept",
    }


def test_select_rows_keeps_items_of_selected_rows_in_row_major_order():
    out = select_rows(_batch(), [2, 0])
    assert out["input_ids"].tolist() == [[5, 6], [1, 2]]
    assert out["images"].flatten().tolist() == [2.0, 0.0]
    # targets of old row 2 (now 0) first, then old row 0 (now 1)
    assert out["target_boxes"][:, 0].tolist() == [1.0, 2.0, 0.0]
    assert out["target_batch"].tolist() == [0, 0, 1]
    assert out["region_boxes"].shape == (0, 4) and out["region_batch"].tolist() == []
    assert out["concept_ids"].tolist() == [7, 9, 8] and out["concept_batch"].tolist() == [0, 0, 1]
    assert out["samples"] == ["s2", "s0"] and out["note"] == "kept"
    with pytest.raises(IndexError):
        select_rows(_batch(), [3])


def test_select_rows_keeps_only_the_images_of_selected_rows():
    batch = dict(
        _batch(), images=torch.tensor([[10.0], [11.0]]), image_index=torch.tensor([1, 0, 1])
    )
    out = select_rows(batch, [2, 1])
    assert out["images"].flatten().tolist() == [10.0, 11.0]
    assert out["image_index"].tolist() == [1, 0]  # row 2 shows image 11, row 1 image 10
    assert [row_image(out, r).item() for r in (0, 1)] == [11.0, 10.0]
    one = select_rows(batch, [0, 2])
    assert one["images"].flatten().tolist() == [11.0] and one["image_index"].tolist() == [0, 0]


def test_rows_by_task():
    class S:
        def __init__(self, task):
            self.task, self.meta = task, {}

    samples = [S("rec"), S("chain"), S("caption"), S("rec")]
    assert rows_by_task(samples, ("rec", "caption")) == {"rec": [0, 3], "caption": [2]}


def _contract_keys() -> set[str]:
    import re

    import scalar.core.batch as contract

    pattern = r"^(\w+)\s+(?:Float|Long|Bool)Tensor|^(\w+)\s+list\["
    found = re.findall(pattern, contract.__doc__, flags=re.M)
    return {a or b for a, b in found}


def test_design_page_lists_the_keys_of_the_contract():
    """docs/design.md's table and the contract's docstring name the same keys."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    section = page.split("## The batch contract", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {key for cell in rows for key in re.findall(r"`(\w+)`", cell)}
    keys = _contract_keys()
    assert len(keys) >= 20 and "concept_attention_mask" in keys and "prompt_input_ids" in keys
    assert documented == keys
