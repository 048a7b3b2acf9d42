"""Box codecs on the data side: textual targets built by the tasks parse back to the pixel
box within half a bin, continuous targets are the box over (w, h, w, h) exactly, and
squashing the image to the model size leaves normalised coordinates unchanged
(coordinates are relative to the original image; images are resized without padding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scalar.core import tokens as T
from scalar.core.boxes import parse_box_text
from scalar.data.collate import Collator
from scalar.data.dataset import SampleDataset, load_image
from scalar.data.scene import ImageInfo, Object, RefExpr, Scene
from scalar.data.tasks import TaskBuilder
from scalar.data.tokenizer import train_tokenizer

W, H = 640, 427  # width != height
BOXES = {
    1: (12.3, 40.0, 200.7, 300.2),
    2: (401.0, 5.5, 639.0, 426.9),
    3: (0.0, 0.0, 33.3, 17.1),
}


def scene(path: str = "unused.png", w: int = W, h: int = H) -> Scene:
    objs = [Object(i, name, box) for (i, box), name in zip(BOXES.items(), ("cat", "dog", "cup"))]
    refs = [RefExpr(10 + i, i, [f"the {o.category} there"], "train") for i, o in enumerate(objs)]
    return Scene(ImageInfo(7, path, w, h), objs, refs=refs, split="train")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = ["where is the cat there ? [12,340,999,5] the dog , a cup", "what is it"] * 10
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=300)


def test_textual_targets_parse_back_within_half_a_bin():
    samples = TaskBuilder(["rec", "grounded", "chain"], box_format="textual").build(scene())
    assert {s.task for s in samples} == {"rec", "grounded", "chain"}
    half_x, half_y = W / 999 / 2, H / 999 / 2
    n = 0
    for s in samples:
        parsed = parse_box_text(s.target)
        assert len(parsed) == len(s.target_boxes) > 0 and T.BOX not in s.target
        for (x1, y1, x2, y2), box in zip(parsed, s.target_boxes):
            px = (x1 * W, y1 * H, x2 * W, y2 * H)
            assert box in BOXES.values()
            for v, ref, half in zip(px, box, (half_x, half_y, half_x, half_y)):
                assert abs(v - ref) <= half + 1e-9, (s.target, box)
            n += 1
    assert n >= len(BOXES) * 2
    # a hand-worked value: 12.3 / 640 * 999 = 19.2 -> 19 -> 19 / 999 * 640 = 12.17 px
    rec = next(s for s in samples if s.task == "rec" and s.target_boxes[0] == BOXES[1])
    assert rec.target == "[19,94,313,702]"


def test_continuous_targets_are_box_over_size_exactly(tokenizer):
    builder = TaskBuilder(["rec", "grounded", "roc"], box_format="continuous",
                          prompt_kinds=["box"])  # fmt: skip
    samples = builder.build(scene())
    items = [{"sample": s, "image": torch.zeros(3, 8, 8), "skipped": []} for s in samples]
    batch = Collator(tokenizer, region_tokens=2, mask_size=8)(items)
    want = [
        [b[0] / W, b[1] / H, b[2] / W, b[3] / H]
        for s in samples
        if s.task != "roc"
        for b in s.target_boxes
    ]
    assert torch.equal(batch["target_boxes"], torch.tensor(want, dtype=torch.float32))
    regions = [[b[0] / W, b[1] / H, b[2] / W, b[3] / H] for s in samples for b in
               (vp.box for vp in s.regions)]  # fmt: skip
    assert len(regions) == len(BOXES)
    assert torch.equal(batch["region_boxes"], torch.tensor(regions, dtype=torch.float32))
    assert batch["image_sizes"].tolist() == [[W, H]] * len(samples)


def _drawn(path, w: int, h: int, box) -> None:
    arr = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    arr[y1:y2, x1:x2] = (255, 0, 0)
    Image.fromarray(arr).save(path)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_squash_keeps_normalised_coordinates(tmp_path, tokenizer, size):
    w, h, box = 200, 80, (50.0, 20.0, 150.0, 60.0)
    path = tmp_path / "img.png"
    _drawn(path, w, h, box)
    s = scene(str(path), w, h)
    s.objects = [Object(1, "cat", box)]
    s.refs = [RefExpr(1, 1, ["the cat"], "train")]
    samples = TaskBuilder(["rec"]).build(s)
    # the decoded image: red where the box is, at the box's normalised place * size
    img = load_image(str(path), size, (0, 0, 0), (1, 1, 1))
    red = (img[0] > 0.5) & (img[1] < 0.5)
    ys, xs = torch.nonzero(red, as_tuple=True)
    got = (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
    want = (box[0] / w * size, box[1] / h * size, box[2] / w * size, box[3] / h * size)
    assert all(abs(g - v) <= 1.0 for g, v in zip(got, want)), (got, want)
    # the batch's normalised target does not depend on the model size
    ds = SampleDataset(samples, size, (0, 0, 0), (1, 1, 1))
    batch = Collator(tokenizer, region_tokens=1)([ds[0]])
    assert batch["images"].shape == (1, 3, size, size)
    norm = torch.tensor([[box[0] / w, box[1] / h, box[2] / w, box[3] / h]], dtype=torch.float32)
    assert torch.equal(batch["target_boxes"], norm)
