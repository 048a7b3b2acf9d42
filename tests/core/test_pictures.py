"""Pictures of predicted vs true boxes: size, outline width and panel text, read off pixels."""

import numpy as np
import pytest
from PIL import Image

from scalar.core.pictures import (
    FONT_PX,
    GIVEN,
    MIN_LONG_SIDE,
    PANEL_BG,
    PRED,
    RULE,
    RULE_PX,
    TRUE,
    box_iou,
    draw_boxes,
    iou_text,
    panel_lines,
    record_boxes01,
    same_size,
)

GREY = (120, 120, 120)


def run_lengths(row: np.ndarray, colour) -> list[int]:
    """Lengths of the runs of ``colour`` along a row of RGB pixels."""
    hit = np.all(row == np.array(colour, dtype=np.uint8), axis=-1)
    runs, n = [], 0
    for v in hit:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def test_small_image_is_upscaled_and_outlines_are_three_pixels():
    pic = draw_boxes(
        Image.new("RGB", (64, 48), GREY), [[0.25, 0.25, 0.5, 0.75]], [[0.5, 0.1, 0.9, 0.9]]
    )
    a = np.asarray(pic)
    assert pic.size[0] == MIN_LONG_SIDE  # 64 px wide -> 512
    image_h = 48 * MIN_LONG_SIDE // 64  # 384: the image area, the panel below
    assert pic.size[1] > image_h
    row = a[image_h // 2]  # through both boxes' vertical edges
    assert run_lengths(row, PRED) == [3, 3]
    assert run_lengths(row, TRUE) == [3, 3]
    col = a[:image_h, 512 // 4 + 20]  # a column through the red box's top and bottom edges
    assert run_lengths(col, PRED) == [3, 3]
    # the red box's left edge sits at 0.25 * 512 = 128 (outline drawn inwards)
    assert np.all(row[128] == PRED) and np.all(row[127] == GREY) and np.all(row[131] == GREY)


def test_large_image_keeps_its_size_and_pixels():
    im = Image.new("RGB", (800, 600), GREY)
    pic = draw_boxes(im, [], [])
    assert pic.size[0] == 800 and pic.size[1] > 600
    assert np.all(np.asarray(pic)[:600] == GREY)


def panel(pic: Image.Image, image_h: int) -> np.ndarray:
    """The panel below the image, without the line that separates them."""
    assert np.all(np.asarray(pic)[image_h : image_h + RULE_PX] == RULE)
    return np.asarray(pic)[image_h + RULE_PX :]


def text_rows(p: np.ndarray) -> int:
    """Rows of the panel holding dark (text) pixels."""
    dark = np.all(p < 100, axis=-1)
    return int(dark.any(axis=1).sum())


def test_panel_has_legend_and_one_text_line_per_item():
    im = Image.new("RGB", (100, 100), GREY)
    short = draw_boxes(im, [[0.1, 0.1, 0.4, 0.4]], [[0.2, 0.2, 0.5, 0.5]])
    full = draw_boxes(im, [[0.1, 0.1, 0.4, 0.4]], [[0.2, 0.2, 0.5, 0.5]],
                      prompt="where is the red circle?", answer="<box>", given01=[[0.6, 0.6, 0.9, 0.9]])  # fmt: skip
    line_h = FONT_PX + 6
    # legend + IoU line vs legend + prompt + answer + IoU: two more lines of text
    assert full.size[1] - short.size[1] == 2 * line_h
    p = panel(full, 512)
    assert p.shape[0] >= 4 * FONT_PX  # legible: at least four lines of 18 px text
    assert np.all(p[-1] == PANEL_BG) and np.all(p[:, -1] == PANEL_BG)  # blank margins
    for colour in (PRED, TRUE, GIVEN):  # legend swatches of every colour drawn
        swatch = np.all(p == np.array(colour, dtype=np.uint8), axis=-1)
        assert swatch.sum() >= (FONT_PX - 6) ** 2
    assert text_rows(p) >= 4 * (FONT_PX // 2)  # glyph rows in each of the four lines
    assert text_rows(panel(short, 512)) < text_rows(p)


def test_long_prompts_wrap_to_the_picture_width():
    im = Image.new("RGB", (64, 64), GREY)
    long = "where is " + "the very small red circle next to " * 6 + "the square?"
    pic = draw_boxes(im, [[0.1, 0.1, 0.4, 0.4]], [], prompt=long, iou=None)
    p = panel(pic, 512)
    dark_cols = np.where(np.all(p < 100, axis=-1).any(axis=0))[0]
    assert dark_cols.max() < 512 - 4  # nothing written past the right margin
    assert len(panel_lines(long, None, None, 40)) == 4  # wrapped, at most 4 lines per item
    assert panel_lines(long, None, None, 40)[-1].endswith("...")


def test_iou_text_by_hand():
    # [0,0,.5,.5] vs [.25,.25,.75,.75]: intersection .0625, union .4375 -> 1/7
    assert box_iou([0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]) == pytest.approx(1 / 7)
    assert iou_text([[0, 0, 0.5, 0.5]], [[0.25, 0.25, 0.75, 0.75]]) == "IoU 0.14"
    assert iou_text([], [[0, 0, 1, 1]]) == "IoU 0.00 (no box predicted)"
    assert iou_text([[0, 0, 1, 1]], []) is None
    two = iou_text([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [[0, 0, 0.5, 0.5], [0.5, 0, 1, 0.5]])
    assert two == "IoU per true box (best match): 1.00, 0.00"
    assert panel_lines("<s> where? <sep>", "<box></s>", "IoU 0.50") == [
        "prompt: where?",
        "answer: <box>",
        "IoU 0.50",
    ]


def test_record_boxes_are_normalised_by_image_size():
    rec = {"image_size": [200, 100], "boxes": [[20, 10, 100, 50]],
           "truth": {"box": [0, 0, 200, 100]}, "regions": [{"kind": "box", "box": [50, 50, 100, 100]}]}  # fmt: skip
    assert record_boxes01(rec) == ([[0.1, 0.1, 0.5, 0.5]], [[0, 0, 1, 1]], [[0.25, 0.5, 0.5, 1]])
    grounded = {"image_size": [10, 10], "boxes": [], "truth": {"objects": [{"box": [0, 0, 5, 5]}]}}
    assert record_boxes01(grounded) == ([], [[0, 0, 0.5, 0.5]], [])


def test_same_size_pads_right_and_bottom_with_the_panel_colour():
    a, b = Image.new("RGB", (10, 20), GREY), Image.new("RGB", (12, 15), GREY)
    out = same_size([a, b])
    assert [i.size for i in out] == [(12, 20), (12, 20)]
    first, second = np.asarray(out[0]), np.asarray(out[1])
    assert np.all(first[:, :10] == GREY) and np.all(first[:, 10:] == PANEL_BG)
    assert np.all(second[:15] == GREY) and np.all(second[15:] == PANEL_BG)
    assert same_size([]) == []
