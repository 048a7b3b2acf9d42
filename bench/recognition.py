"""Object recognition in a corpus: how fast the model's vision tower can learn it with direct
supervision, and how much of it an align checkpoint has learned. Writes a JSON (default
bench/results/recognition.json). Two measurements:

    python bench/recognition.py [--steps N | --seconds S] [--images 8] -- OVERRIDES...
        the tower of ``model`` (random init, or model.vision.pretrained) plus a small head
        on RoI-aligned cell features, trained with per-object category cross entropy on
        the train split (``--images`` images per step, every annotated object of each);
        reports category accuracy on the val objects, steps and objects seen.
        ``--save FILE`` writes the trained tower as a visual-only state dict that
        ``model.vision.pretrained=FILE`` loads.
    python bench/recognition.py --ckpt RUN/checkpoints/last.ckpt -- OVERRIDES...
        zero-shot: each val object's region embedding (the model's region encoder on its
        box) against the concept embeddings of the seen category names written as the
        chains write them ("a star"); reports the accuracy.

``OVERRIDES`` compose ``conf/train.yaml`` (model=..., data=..., paths.data_dir=...,
data.synthetic.difficulty=...). Images are read and resized as the data layer does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from torch import nn  # noqa: E402

from scalar.data.chains import article  # noqa: E402
from scalar.data.dataset import load_image  # noqa: E402
from scalar.model.region import pool_box, tokens_to_grid  # noqa: E402
from scalar.train.checkpoint import load_weights  # noqa: E402


def load_split(scenes, names: list[str], size: int, mean, std):
    """``(images [N, 3, S, S], boxes01 [list of [O, 4]], labels [list of [O]])`` of the
    scenes' objects whose category is in ``names`` (scenes left with none are dropped)."""
    images, boxes, labels = [], [], []
    for s in scenes:
        objs = [o for o in s.objects if o.category in names]
        if not objs:
            continue
        images.append(load_image(s.image.path, size, mean, std))
        wh = torch.tensor([s.image.width, s.image.height] * 2, dtype=torch.float32)
        boxes.append(torch.tensor([list(o.box) for o in objs], dtype=torch.float32) / wh)
        labels.append(torch.tensor([names.index(o.category) for o in objs]))
    return torch.stack(images), boxes, labels


def owners(boxes01: list[torch.Tensor]) -> torch.Tensor:
    """Image index of every box of the per-image box lists, concatenated."""
    return torch.cat([torch.full((len(b),), i) for i, b in enumerate(boxes01)])


class RoIHead(nn.Module):
    """Category logits of boxes from RoI-aligned ``grid x grid`` cell features."""

    def __init__(self, dim: int, classes: int, grid: int = 2, hidden: int = 128):
        super().__init__()
        self.grid = grid
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(dim * grid * grid, hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, tower: nn.Module, images, boxes01) -> torch.Tensor:
        patches, grid = tower(images)
        fmap = tokens_to_grid(patches, grid)
        return self.mlp(pool_box(fmap, torch.cat(boxes01), owners(boxes01), self.grid))


def accuracy(predict, images, boxes, labels, batch: int = 50) -> float:
    with torch.no_grad():
        hits = sum(
            int((predict(images[i : i + batch], boxes[i : i + batch]).argmax(1)
                 == torch.cat(labels[i : i + batch])).sum())
            for i in range(0, len(images), batch)
        )  # fmt: skip
    return hits / max(1, sum(len(y) for y in labels))


def train_tower(tower, train, val, classes: int, images_per_step: int, lr: float,
                steps: int | None, seconds: float | None, seed: int) -> dict:  # fmt: skip
    """Per-object cross entropy on ``train``; returns the figures (tower trained in place)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = RoIHead(tower.dim, classes)
    opt = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=lr)
    x, b, y = train
    step, seen, losses, t0 = 0, 0, [], time.perf_counter()
    while (steps is None or step < steps) and (
        seconds is None or time.perf_counter() - t0 < seconds
    ):
        idx = torch.randint(0, len(x), (images_per_step,), generator=gen).tolist()
        target = torch.cat([y[i] for i in idx])
        loss = F.cross_entropy(head(tower, x[idx], [b[i] for i in idx]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step, seen = step + 1, seen + len(target)
        losses.append(float(loss))
    wall = time.perf_counter() - t0
    tower.eval()
    acc = accuracy(lambda im, bx: head(tower, im, bx), *val)
    k = max(1, len(losses) // 10)
    return {"steps": step, "objects_seen": seen, "seconds": round(wall, 1),
            "first_loss": sum(losses[:k]) / k, "last_loss": sum(losses[-k:]) / k,
            "val_accuracy": acc}  # fmt: skip


def zero_shot(model, val, names: list[str]) -> float:
    """Accuracy of region embeddings against the concept embeddings of ``names``, both from
    the model's own ``encode_concepts`` (the contrastive term's embeddings in training)."""
    tok = model.tokenizer
    ids = [tok(article(n), add_special_tokens=False)["input_ids"] for n in names]
    width = max(map(len, ids))
    texts = {
        "concept_input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
        "concept_attention_mask": torch.tensor(
            [[1] * len(i) + [0] * (width - len(i)) for i in ids]
        ),
    }

    def predict(images, boxes01):
        patches, grid = model.encode_images(images)
        batch = {**texts, "concept_boxes": torch.cat(boxes01), "concept_batch": owners(boxes01)}
        out = model.encode_concepts(batch, patches, grid)  # region_emb [O], concept_emb [V]
        return out["region_emb"] @ out["concept_emb"].T

    return accuracy(predict, *val)


def save_tower(tower, vis, path: str) -> None:
    """The trained tower as a full open_clip visual state dict (the blocks after
    ``feature_layer``, pruned by the model, keep their random init) for
    ``model.vision.pretrained``."""
    import open_clip

    from scalar.model.vision import register_configs

    register_configs()
    full = open_clip.create_model(vis.name, force_image_size=int(vis.image_size)).visual
    state = full.state_dict()
    trained = {k[len("visual.") :]: v for k, v in tower.state_dict().items()}
    state.update({k: v for k, v in trained.items() if k in state})
    torch.save(state, path)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default=None, help="align checkpoint: zero-shot accuracy")
    ap.add_argument("--steps", type=int, default=None, help="training steps (tower mode)")
    ap.add_argument("--seconds", type=float, default=None, help="training wall budget")
    ap.add_argument("--images", type=int, default=8, help="images per training step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="write the trained tower here")
    ap.add_argument("--out", default=str(ROOT / "bench/results/recognition.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    if args.ckpt is None and args.steps is None and args.seconds is None:
        ap.error("give --ckpt, or a training budget (--steps and/or --seconds)")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(args.overrides))
    dm = instantiate(cfg.data)
    dm.prepare_data()
    corpora = dm.read_corpora()
    names = sorted({o.category for s in corpora["train"].scenes for o in s.objects})
    model = instantiate(cfg.model)
    vis = cfg.model.vision
    size, mean, std = int(vis.image_size), list(vis.mean), list(vis.std)
    val = load_split(corpora["val"].scenes, names, size, mean, std)
    out = {"overrides": list(args.overrides), "categories": names,
           "val_objects": sum(len(y) for y in val[2]), "chance": 1 / len(names)}  # fmt: skip
    if args.ckpt:
        load_weights(model.eval(), args.ckpt, key="--ckpt")
        out.update(ckpt=args.ckpt, zero_shot_accuracy=zero_shot(model, val, names))
    else:
        train = load_split(corpora["train"].scenes, names, size, mean, std)
        out.update(images_per_step=args.images, lr=args.lr, seed=args.seed,
                   **train_tower(model.vision, train, val, len(names), args.images, args.lr,
                                 args.steps, args.seconds, args.seed))  # fmt: skip
        if args.save:
            save_tower(model.vision, vis, args.save)
    print(json.dumps(out))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
