"""The RL stage's words: the training split's category names plus the user's vocabulary
file, and the phrases of an image's weak caption.

Nothing here reads the unlabeled pool's annotations or any split but the training one:
held-out category names reach the RL stage only through the user's vocabulary file or
the pool's own weak text.
"""

from __future__ import annotations

import re
from pathlib import Path

ARTICLES = frozenset("a an the some one two three".split())
GENERIC = frozenset(  # image-level nouns of alt-text, never an object to ground
    "picture photo photograph image background view scene here there thing things".split()
)
_SPLIT = re.compile(
    r",|;|\.|\b(?:and|with|of|on|in|at|near|beside|behind|next to|there is|there are|is|are)\b"
)


def read_vocabulary(path: str | Path) -> list[str]:
    """Words of a vocabulary file (one word or phrase a line; blank lines and ``#``
    comments skipped), lower-cased, in file order without repeats."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rl.vocabulary: file not found: {path}")
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        w = " ".join(line.split("#", 1)[0].lower().split())
        if w and w not in words:
            words.append(w)
    if not words:
        raise ValueError(f"rl.vocabulary: {path} holds no words (one word a line)")
    return words


def stage_vocabulary(corpora, split: str = "train", path: str | Path | None = None) -> list[str]:
    """The categories of the objects annotated in ``corpora[split]`` (sorted; a corpus's
    category table may list more, e.g. COCO files list held-out ones) followed by the
    vocabulary file's words that are not among them. A clear error when both are empty."""
    scenes = corpora[split].scenes if split in corpora else []
    names = sorted({o.category for s in scenes for o in s.objects})
    extra = [w for w in read_vocabulary(path) if w not in names] if path else []
    words = names + extra
    if not words:
        raise ValueError(
            f"rl: no vocabulary: the data has no {split!r} split with categories and "
            "rl.vocabulary names no file (a text file, one word a line)"
        )
    return words


def caption_phrases(text: str, max_words: int = 4) -> list[str]:
    """The noun-phrase-like chunks of a weak caption: split at punctuation, conjunctions
    and prepositions, articles and image-level words (``GENERIC``) dropped; chunks left
    empty or longer than ``max_words`` are left out. ``"a picture of a red circle and a star"``
    -> ``["red circle", "star"]``."""
    out = []
    for chunk in _SPLIT.split(text.lower()):
        words = [w for w in re.findall(r"[a-z][a-z'-]*", chunk) if w not in ARTICLES | GENERIC]
        if not words or len(words) > max_words:
            continue
        phrase = " ".join(words)
        if phrase not in out:
            out.append(phrase)
    return out
