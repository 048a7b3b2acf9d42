"""Ask a checkpoint about one image: prints the answer (and boxes in pixels), saves a picture.

    python predict.py ckpt=<file|run folder|last> image=<file> prompt="where is the red circle?"
    python predict.py ckpt=... image=... prompt="what is <region>?" box=[10,20,60,80]
    python predict.py ckpt=... image=... prompt="describe <region>." point=[40,52]

``image``, ``prompt``, ``box``, ``point`` and ``out`` are short for ``predict.<key>``;
other ``conf/eval.yaml`` keys (``max_new_tokens=...``, ``model.*``) work as in eval.py.
The picture shows the predicted boxes in red and the visual prompt (if any) in blue, with
the prompt and the answer written below it.
Decoding is greedy, as in evaluation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from scalar.core import tokens as T
from scalar.core.errors import UserError

CONF = Path(__file__).resolve().parents[2] / "conf"
SHORT = ("image", "prompt", "box", "point", "out")


def _numbers(value: Any, n: int, name: str) -> list[float] | None:
    if value is None:
        return None
    vals = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if not isinstance(vals, list | tuple) or len(vals) != n:
        raise UserError(f"{name} must be a list of {n} numbers in pixels, got {vals!r}")
    try:
        return [float(v) for v in vals]
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a list of {n} numbers in pixels, got {vals!r}") from None


def build_sample(image: Path, prompt: str, box=None, point=None):
    """The ``Sample`` of one question about ``image`` (with its visual prompt, if any)."""
    from PIL import Image

    from scalar.data.sample import Sample, VisualPrompt
    from scalar.data.scene import ImageInfo

    if not image.is_file():
        raise FileNotFoundError(f"image not found: {image}")
    with Image.open(image) as im:
        width, height = im.size
    box, point = _numbers(box, 4, "box"), _numbers(point, 2, "point")
    if box is not None and point is not None:
        raise UserError("give either box=[x1,y1,x2,y2] or point=[x,y], not both")
    regions = []
    if box is not None:
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise UserError(f"box {box} is not a box inside the {width}x{height} image (xyxy)")
        regions.append(VisualPrompt("box", (x1, y1, x2, y2)))
    if point is not None:
        x, y = point
        if not (0 <= x <= width and 0 <= y <= height):
            raise UserError(f"point {point} is outside the {width}x{height} image")
        regions.append(VisualPrompt("point", (x, y, x, y), point=(x, y)))
    if prompt.count(T.REGION) != len(regions):
        raise UserError(
            f"the prompt has {prompt.count(T.REGION)} {T.REGION} placeholder(s) but "
            f"{len(regions)} visual prompt(s) were given (box=... or point=... fills one)"
        )
    info = ImageInfo(id=image.stem, path=str(image), width=width, height=height)
    return Sample("predict", info, prompt, "", regions, [], {"id": f"predict:{image.name}"})


def predict(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load the checkpoint's model, answer ``cfg.predict.prompt`` about ``cfg.predict.image``."""
    from hydra.utils import instantiate

    from scalar.core.pictures import draw_boxes
    from scalar.data.collate import Collator
    from scalar.data.dataset import load_image
    from scalar.train.checkpoint import load_checkpoint_file, load_weights
    from scalar.train.evaluate import model_config, resolve_eval_ckpt

    p = cfg.predict
    if not p.get("image"):
        raise UserError("image is required: image=<file>")
    sample = build_sample(
        Path(str(p.image)).expanduser(), str(p.prompt), p.get("box"), p.get("point")
    )
    with open_dict(cfg):
        cfg.paths.output_dir = "."  # no run folder: resolving a checkpoint needs none
    path = resolve_eval_ckpt(cfg)
    ckpt = load_checkpoint_file(path)
    saved = (ckpt.get("scalar") or {}).get("config") or {}
    with open_dict(cfg):
        cfg.model = model_config(cfg, saved, overrides or [])
    model = instantiate(cfg.model)
    load_weights(model, ckpt, path)
    del ckpt
    vision = cfg.model.vision
    saved_data = saved.get("data") or {}
    mask_size = int(
        (saved_data.get("encoding") or {}).get("mask_size")
        or saved_data.get("mask_size")  # a checkpoint of before the data.encoding group
        or cfg.data.encoding.mask_size
    )
    collate = Collator(model.tokenizer, model.region_tokens, mask_size)
    image = load_image(
        sample.image.path, int(vision.image_size), list(vision.mean), list(vision.std)
    )
    batch = collate([{"sample": sample, "image": image}])
    gen = model.generate(batch, max_new_tokens=int(cfg.max_new_tokens), do_sample=False)
    out = (
        Path(str(p.out))
        if p.get("out")
        else Path.cwd() / f"{Path(sample.image.path).stem}_pred.png"
    )
    from PIL import Image

    with Image.open(sample.image.path) as im:
        w, h = im.size
        given = [(b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in (r.box for r in sample.regions)]
        out.parent.mkdir(parents=True, exist_ok=True)
        pic = draw_boxes(im, gen["boxes"][0], (), prompt=sample.prompt, answer=gen["texts"][0],
                         given01=given, iou=None)  # fmt: skip
        pic.save(out)
    return {"text": gen["texts"][0], "boxes": [list(b) for b in gen["boxes_px"][0]],
            "box_formats": gen["box_formats"][0], "picture": str(out), "checkpoint": path}  # fmt: skip


def _args(argv: list[str]) -> list[str]:
    """``image=...`` -> ``predict.image=...``; the prompt is quoted (``<region>`` is not a
    plain Hydra value)."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if key in ("prompt", "predict.prompt") and eq and not value.startswith(("'", '"')):
            value = "'" + value.replace("'", "\\'") + "'"
        out.append(f"predict.{key}={value}" if key in SHORT and eq else f"{key}{eq}{value}")
    return out


def main(argv: list[str] | None = None) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from scalar.train.cli import guard

    os.environ.setdefault("PROJECT_ROOT", str(CONF.parent))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = _args(list(sys.argv[1:] if argv is None else argv))
    guard(args, CONF, "eval")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=args)
    from scalar.train.errors import run_guarded

    result = run_guarded(predict, cfg, args)  # user mistakes: one line, exit 2 or 1
    print(f"answer: {result['text']}")
    for k, (box, fmt) in enumerate(zip(result["boxes"], result["box_formats"]), 1):
        print(f"box {k} ({fmt}, xyxy pixels): [{', '.join(f'{v:.1f}' for v in box)}]")
    print(f"picture: {result['picture']}")
    return 0
