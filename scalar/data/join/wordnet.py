"""A reader of the WordNet database files (``index.noun`` and ``data.noun``), nothing else.

The folder is a local WordNet ``dict`` directory (Princeton WordNet 3.0/3.1, Debian's
``wordnet-base`` ships it as ``/usr/share/wordnet``). Synsets are named the NLTK way,
``lemma.n.NN`` (the NN-th sense of the lemma in ``index.noun``). Only nouns are read:
the LVIS and Visual Genome synsets that name objects are nouns.

File format (one record a line; lines of the licence header begin with two spaces):

- ``index.noun``: ``lemma pos synset_cnt p_cnt [ptr_symbol ...] sense_cnt tagsense_cnt
  offset [offset ...]``, offsets in sense order;
- ``data.noun``: ``offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt
  [ptr_symbol offset pos source/target ...] | gloss``, ``w_cnt`` two hex digits.
  ``@`` is a hypernym pointer, ``@i`` an instance hypernym.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HYPERNYMS = ("@", "@i")


class WordNetError(ValueError):
    """A WordNet folder that cannot be read (names the file and line)."""


@dataclass(frozen=True)
class Synset:
    offset: int
    words: tuple[str, ...]  # lemmas, underscores kept
    hypernyms: tuple[int, ...]  # offsets

    @property
    def lemma(self) -> str:
        return self.words[0].replace("_", " ")


def _records(path: Path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("  ") or not line.strip():
                continue
            yield n, line.rstrip("\n")


class WordNet:
    """Noun synsets of a WordNet folder with hypernym paths."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        index, data = folder / "index.noun", folder / "data.noun"
        for p in (index, data):
            if not p.is_file():
                raise FileNotFoundError(f"WordNet file not found: {p} (wordnet.dir={folder})")
        self.folder = folder
        self.senses: dict[str, tuple[int, ...]] = {}
        for n, line in _records(index):
            f = line.split()
            try:
                p_cnt = int(f[3])
                offsets = tuple(int(x) for x in f[6 + p_cnt :])
            except (IndexError, ValueError):
                raise WordNetError(f"{index}: line {n}: not an index record") from None
            self.senses[f[0].lower()] = offsets
        self.synsets: dict[int, Synset] = {}
        for n, line in _records(data):
            head = line.split(" | ", 1)[0].split()
            try:
                offset, w_cnt = int(head[0]), int(head[3], 16)
                words = tuple(head[4 + 2 * i] for i in range(w_cnt))
                at = 4 + 2 * w_cnt
                p_cnt = int(head[at])
                ptrs = [head[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(p_cnt)]
                hyper = tuple(int(p[1]) for p in ptrs if p[0] in HYPERNYMS and p[2] == "n")
            except (IndexError, ValueError):
                raise WordNetError(f"{data}: line {n}: not a data record") from None
            self.synsets[offset] = Synset(offset, words, hyper)

    def synset(self, name: str) -> Synset | None:
        """``"dog.n.01"`` -> its synset; None when the lemma or sense is unknown."""
        lemma, _, rest = name.strip().lower().rpartition(".n.")
        if not lemma or not rest.isdigit():
            return None
        offsets = self.senses.get(lemma)
        k = int(rest) - 1
        if offsets is None or not 0 <= k < len(offsets):
            return None
        return self.synsets.get(offsets[k])

    def hypernym_path(self, name: str) -> list[str]:
        """Lemmas from the root to the synset (first hypernym at each step), e.g.
        ``["entity", ..., "canine", "dog"]``; empty when the synset is unknown."""
        s = self.synset(name)
        path, seen = [], set()
        while s is not None and s.offset not in seen:
            seen.add(s.offset)
            path.append(s.lemma)
            s = self.synsets.get(s.hypernyms[0]) if s.hypernyms else None
        return path[::-1]

    def ancestors(self, name: str) -> set[int]:
        """Offsets of the synset and all its hypernyms (every branch)."""
        s = self.synset(name)
        todo, out = ([s.offset] if s else []), set()
        while todo:
            o = todo.pop()
            if o in out or o not in self.synsets:
                continue
            out.add(o)
            todo.extend(self.synsets[o].hypernyms)
        return out

    def related(self, a: str, b: str) -> bool:
        """Whether one synset is the other or one of its hypernyms."""
        sa, sb = self.synset(a), self.synset(b)
        if sa is None or sb is None:
            return False
        return sa.offset in self.ancestors(b) or sb.offset in self.ancestors(a)


def load_wordnet(folder: str | Path | None) -> WordNet | None:
    """The WordNet of ``folder``; None (no hierarchy) when ``folder`` is null."""
    return None if folder in (None, "") else WordNet(folder)
