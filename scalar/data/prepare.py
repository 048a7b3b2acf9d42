"""One-time preparation: build the synthetic corpus and train the tiny tokenizer on its text.

Both steps run only when their output is missing, and say what they do.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from scalar.core import tokens as T
from scalar.core.errors import UserError
from scalar.data.sample import Sample
from scalar.data.scene import Corpus, Scene


def ensure_synthetic(root: str | Path, options: dict[str, Any], log: Callable = print) -> bool:
    """Build the synthetic corpus into ``root`` unless ``root/manifest.json`` exists.

    Returns True when it was built now.
    """
    root = Path(root)
    if (root / "manifest.json").is_file():
        manifest = json.loads((root / "manifest.json").read_text())
        built = manifest.get("options", {})
        have, want = built.get("difficulty", "flat"), options.get("difficulty") or "flat"
        if have != want:
            raise UserError(
                f"{root} holds a difficulty={have} corpus but difficulty={want} was asked: "
                "set data.root to another folder (or delete this one to rebuild)"
            )
        stale_preset(root, manifest, want)
        have, want = built.get("geometry", "planar"), options.get("geometry") or "planar"
        if have != want:
            raise UserError(
                f"{root} holds a geometry={have} corpus but geometry={want} was asked: "
                "set data.root to another folder (or delete this one to rebuild)"
            )
        return False
    from scalar.data.synth.build import build_synthetic

    log(f"data: building the synthetic corpus in {root} ({options})")
    manifest = build_synthetic(root, **options)
    counts = manifest.get("counts", {})
    log(
        "data: synthetic corpus built: "
        + ", ".join(f"{k} {v.get('images', 0)} images" for k, v in counts.items())
    )
    return True


def stale_preset(root: Path, manifest: dict, difficulty: str) -> None:
    """A corpus built with other knobs than today's preset of its difficulty (the preset
    was retuned since) is an error, not a silent mix of two worlds."""
    from scalar.data.synth.presets import PRESETS

    if difficulty not in PRESETS or "preset" not in manifest:
        return
    if manifest["preset"] != PRESETS[difficulty].as_dict():
        raise UserError(
            f"{root} was built with an older difficulty={difficulty} preset than this "
            "version's: delete the folder to rebuild it (or set data.root to another folder)"
        )


def textual_target(sample: Sample) -> str | None:
    """The target of a continuous-format sample in the textual format: each ``<box>`` written
    as ``[x1,y1,x2,y2]`` (``tasks.box_text`` of its ``target_boxes``, in order). None when
    the ``<box>`` count differs from the boxes'."""
    from scalar.data.tasks import box_text

    parts = sample.target.split(T.BOX)
    if len(parts) - 1 != len(sample.target_boxes):
        return None
    out = [parts[0]]
    for box, rest in zip(sample.target_boxes, parts[1:]):
        out += [box_text(box, sample.image), rest]
    return "".join(out)


def spread(items: list, k: int | None) -> list:
    """``k`` items evenly spaced over ``items`` (first included, order kept); all if None."""
    n = len(items)
    if k is None or n <= k:
        return items
    return [items[i * n // k] for i in range(k)]


def corpus_texts(corpora: Iterable[Corpus], max_scenes: int | None = None) -> Iterator[str]:
    """Every text the tasks can produce from the corpora (prompts, targets, chain levels,
    references, category names), in both box formats; from at most ``max_scenes`` scenes
    (evenly spaced) of each corpus when given.

    The texts of the continuous format come first, then the textual-format targets that
    differ from them. The samples of both formats are the same but for the boxes of the
    targets (``tasks.py``), so each scene is built once and its targets rewritten.
    """
    from scalar.data.tasks import ALL_TASKS, PROMPTS, TaskBuilder
    from scalar.data.tasks_spatial import SPATIAL_PROMPTS

    yield from PROMPTS.values()
    yield from SPATIAL_PROMPTS.values()
    builder = TaskBuilder(ALL_TASKS, box_format="continuous", seed=0)
    textual_builder = TaskBuilder(ALL_TASKS, box_format="textual", seed=0)
    textual: dict[str, None] = {}  # distinct textual targets, in order
    for corpus in corpora:
        for c in corpus.categories:
            yield " ".join(v for v in (c.name, c.supercategory) if v)
        for scene in spread(corpus.scenes, max_scenes):
            samples = builder.build(scene)
            for s in samples:
                yield s.prompt
                yield s.target
                yield from s.meta.get("references", [])
                yield from (c.text for c in s.meta.get("concepts") or [])
            rewritten = [textual_target(s) for s in samples]
            if None in rewritten:  # not a pure <box> rewrite: build the textual samples
                rewritten = [s.target for s in textual_builder.build(scene)]
            textual.update(dict.fromkeys(rewritten))
    yield from textual


TOKENIZER_MAX_SCENES = 1000


def ensure_tokenizer(
    path: str | Path,
    corpora: Callable[[], Iterable[Corpus]],
    vocab_size: int = 1024,
    log: Callable = print,
    max_scenes: int | None = TOKENIZER_MAX_SCENES,
    extra_texts: Iterable[str] = (),
) -> bool:
    """Train a BPE tokenizer on the corpus text into ``path`` unless it exists.

    ``corpora`` is called only when training is needed. Returns True when trained now.
    Training sees each distinct text once, from at most ``max_scenes`` scenes (evenly
    spaced) of each corpus (None: all). The synthetic text is templated: on the default
    corpus, 1000 scenes per split give the same segmentation of every word and the same
    tokens per text as all 6200 scenes, at a third of the cost. ``extra_texts`` (the
    concept corpus's training sentences, ``data.concepts``) are trained on too.
    """
    path = Path(path)
    if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        return False
    from scalar.data.synth.build import paused_gc
    from scalar.data.tokenizer import train_tokenizer

    with paused_gc():  # reading makes millions of objects and no cycles
        found = corpora()
    texts = list(dict.fromkeys([*corpus_texts(found, max_scenes), *extra_texts]))  # distinct
    log(f"data: training a {vocab_size}-token BPE tokenizer on {len(texts)} texts -> {path}")
    train_tokenizer(texts, path, vocab_size=vocab_size)
    return True


def concept_texts(folder: str | Path, seed: int = 0) -> list[str]:
    """The concept corpus's training sentences (``synth/concepts.py``), written into
    ``folder`` first when missing."""
    from scalar.data.synth.concepts import read_concepts, write_concepts

    if not (Path(folder) / "concepts.json").is_file():
        write_concepts(folder, seed)
    return read_concepts(folder, "train")


def load_sent_kinds(refs_file: str | Path) -> dict:
    """``{ref_id: [kind per sentence]}`` from a refs pickle whose records carry
    ``sent_kinds`` (the synthetic corpus: attribute | relational | ordinal)."""
    from scalar.data.readers.common import load_pickle

    refs = load_pickle(refs_file)
    return {
        r["ref_id"]: list(r["sent_kinds"])
        for r in refs
        if isinstance(r, dict) and "ref_id" in r and isinstance(r.get("sent_kinds"), list)
    }


def attach_sent_kinds(scenes: Iterable[Scene], kinds: dict) -> int:
    """Put each scene's ``{ref_id: kinds}`` in ``scene.meta["sent_kinds"]``; returns refs matched."""
    n = 0
    for scene in scenes:
        mine = {r.ref_id: kinds[r.ref_id] for r in scene.refs if r.ref_id in kinds}
        if mine:
            scene.meta["sent_kinds"] = mine
            n += len(mine)
    return n


def held_out_names(spec: Any, corpora: Iterable[Corpus] = ()) -> set[str]:
    """Held-out category names: from categories marked ``held_out``, plus ``spec`` (a list
    of names, or a path to a manifest JSON with ``held_out_categories``)."""
    names = {c.name for corpus in corpora for c in corpus.categories if c.held_out}
    if spec is None:
        return names
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if not path.is_file():
            return names
        from scalar.data.readers.common import load_json

        data = load_json(path)
        return names | set(data.get("held_out_categories", []) if isinstance(data, dict) else [])
    return names | {str(n) for n in spec}


def cap_samples(samples: list[Sample], cap: int | None, seed: int) -> list[Sample]:
    """At most ``cap`` samples, shared equally among tasks (seeded choice, order kept)."""
    if not cap or len(samples) <= cap:
        return samples
    by_task: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_task.setdefault(s.task, []).append(i)
    rng = random.Random(seed)
    for idx in by_task.values():
        rng.shuffle(idx)
    chosen: list[int] = []
    queues = [list(v) for _, v in sorted(by_task.items())]
    while len(chosen) < cap:
        for q in queues:
            if q and len(chosen) < cap:
                chosen.append(q.pop())
    return [samples[i] for i in sorted(chosen)]
