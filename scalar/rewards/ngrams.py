"""Exact integer ids for words and n-grams, and vectorised n-gram counting.

Used by :mod:`scalar.rewards.cider`. A word's id is also its unigram's id; a k-gram's id
is looked up from ``(id of its (k-1)-gram prefix, id of its last word)``, so ids are exact
(no hashing) and new texts only add entries when ``intern=True`` (references).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from itertools import count, repeat

import numpy as np

from scalar.metrics.text import simple_tokenize

SHIFT = 1 << 31  # n-gram id = ext[(prefix id) * SHIFT + (last word id)]
_I64 = np.int64
_SEP = "\x00"  # ends every text in simple_tokenize's batched form
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})


class Arena:
    """A growable stack of rows (amortised doubling); ``data[:size]`` are the rows."""

    def __init__(self, width: int, dtype):
        self.data, self.size = np.zeros((16, width), dtype=dtype), 0

    def append(self, rows: np.ndarray) -> int:
        start, end = self.size, self.size + len(rows)
        if end > len(self.data):
            grown = np.zeros((max(end, 2 * len(self.data)), self.data.shape[1]), self.data.dtype)
            grown[:start] = self.data[:start]
            self.data = grown
        self.data[start:end] = rows
        self.size = end
        return start


def argsort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, keys[order])`` for non-negative int64 keys, ties in any order.

    One sort of ``key << b | index`` when that fits in int64 (several times faster than
    ``np.argsort`` here), else ``np.argsort``.
    """
    b = max(len(keys) - 1, 1).bit_length()
    if not len(keys) or int(keys.max()) < 1 << (62 - b):
        packed = np.sort((keys << b) | np.arange(len(keys)))
        return packed & ((1 << b) - 1), packed >> b
    order = np.argsort(keys)
    return order, keys[order]


def find_sorted(table: np.ndarray, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each needle (>= -1) in the sorted ``table`` and whether it is there."""
    if not len(table):
        return np.zeros(len(needles), dtype=_I64), np.zeros(len(needles), dtype=bool)
    order, srt = argsort_keys(needles + 1)  # sorted needles search faster
    at = np.empty(len(needles), dtype=_I64)
    at[order] = np.minimum(np.searchsorted(table, srt - 1), len(table) - 1)
    return at, table[at] == needles


def concat_ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + k)`` for each ``(s, k)``."""
    ends = np.cumsum(sizes)
    return np.repeat(starts - (ends - sizes), sizes) + np.arange(ends[-1] if len(ends) else 0)


def tokens(texts: Sequence[str], tokenize: Callable[[str], list[str]]) -> tuple[list, object]:
    """The tokens of all texts, each text followed by a separator token; and that separator.

    ``simple_tokenize`` runs once on the joined batch (same tokens: ``" \\x00 "`` between
    texts is neither cased nor punctuation, so ``lower`` and the split act per text alike);
    other tokenizers run per text, with ``None`` as separator.
    """
    if tokenize is simple_tokenize:
        try:
            joined = " \x00 ".join(texts) + " \x00"
        except TypeError:  # not all str: simple_tokenize applies str() to each
            joined = ""
        if joined.count(_SEP) == len(texts):  # no text holds the separator itself
            return joined.lower().translate(_PUNCT_TO_SPACE).split(), _SEP
    out: list = []
    for t in texts:
        out += tokenize(t)
        out.append(None)
    return out, None


class NgramIndex:
    """Interned words and n-grams (orders 1..n) of a text collection.

    ``count(texts, intern)`` gives every text's distinct n-grams with their ids (-1 for
    n-grams never interned, when ``intern=False``), orders and counts.
    """

    def __init__(self, n: int, tokenize: Callable[[str], list[str]]):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.tokenize = int(n), tokenize
        self.words: dict[str, int] = {}  # word -> id (= the id of its unigram)
        self.ext: dict[int, int] = {}  # prefix id * SHIFT + word id -> n-gram id
        self.size = 0  # ids in use: 0..size-1

    def _new_id(self) -> int:
        if self.size >= SHIFT - 1:  # SHIFT - 1 stays unused: see ``CiderD.score``
            raise OverflowError("more than 2**31 - 1 distinct n-grams")
        self.size += 1
        return self.size - 1

    def _extend(self, prefix: np.ndarray, word: np.ndarray, intern: bool) -> np.ndarray:
        """Ids of the n-grams ``prefix + word`` (-1 where either is -1, or unknown)."""
        out = np.full(len(prefix), -1, dtype=_I64)
        at = np.flatnonzero((prefix >= 0) & (word >= 0))  # only these can be known
        codes = (prefix[at] * SHIFT + word[at]).tolist()
        found = np.fromiter(map(self.ext.get, codes, repeat(-1)), dtype=_I64, count=len(codes))
        if intern:
            for i in np.flatnonzero(found < 0).tolist():
                c = codes[i]
                found[i] = self.ext[c] = self.ext[c] if c in self.ext else self._new_id()
        out[at] = found
        return out

    def count(self, texts: Sequence[str], intern: bool):
        """Distinct n-grams of each text: ``(text index, id, order - 1, tf)`` arrays + lengths.

        Counting sorts exact per-batch codes (a token's code: 1 + the position where it
        first occurs, base ``len(tokens) + 1``), so unknown n-grams (id -1) are counted
        exactly too; a batch whose codes would not fit in int64 is split in halves.
        """
        n, n_t = self.n, len(texts)
        if not n_t:
            return tuple(np.zeros(0, dtype=d) for d in (_I64, _I64, _I64, float, float))
        toks, sep = tokens(texts, self.tokenize)
        total = len(toks)
        base = total + 1
        if n_t * base**n >= 1 << 62:
            if n_t == 1:
                raise ValueError(f"a sentence of {total - 1} tokens is too long to count")
            h = n_t // 2
            a, b = self.count(texts[:h], intern), self.count(texts[h:], intern)
            b = (b[0] + h, *b[1:])
            return tuple(np.concatenate([x, y]) for x, y in zip(a, b))
        local: dict = {}  # token -> 1 + its first position
        code = np.fromiter(map(local.setdefault, toks, count(1)), _I64, total)
        if intern:
            for w in local:
                if w is not sep and w not in self.words:
                    self.words[w] = self._new_id()
        gw = np.empty(base, dtype=_I64)  # token code -> word id (-1: unknown, separator)
        gw[np.fromiter(local.values(), _I64, len(local))] = np.fromiter(
            map(self.words.get, local, repeat(-1)), _I64, len(local)
        )
        is_sep = code == local[sep]
        gw[local[sep]] = -1
        sent = np.cumsum(is_sep)  # the text of each token (+1 on separators)
        sent -= is_sep
        codes = np.zeros((n, total), dtype=_I64)  # k-gram at p: codes[k - 1, p]
        gids = np.full((n, total), -1, dtype=_I64)
        codes[0], gids[0] = code, gw[code]
        valid = np.zeros((n, total), dtype=bool)
        valid[0] = ~is_sep
        for k in range(2, min(n, total) + 1):
            size = total - k + 1  # a k-gram holding a separator is never valid nor known
            codes[k - 1, :size] = codes[k - 2, :size] * base + code[k - 1 :]
            valid[k - 1, :size] = valid[k - 2, :size] & valid[0, k - 1 :]
            gids[k - 1, :size] = self._extend(gids[k - 2, :size], gids[0, k - 1 :], intern)
        at = np.flatnonzero(valid)  # into the [n, total] grid
        o, ks = argsort_keys((codes + sent * base**n).ravel()[at])
        first = np.ones(len(ks), dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
        starts = np.flatnonzero(first)
        tf = np.empty(len(starts))
        tf[:-1] = starts[1:] - starts[:-1]
        tf[-1:] = len(ks) - starts[-1:]
        rep = at[o[starts]]
        order, pos = np.divmod(rep, total)
        ends = np.flatnonzero(is_sep)
        words = ends.copy()  # ends[j] - ends[j - 1] - 1 with ends[-1] = -1
        words[1:] -= ends[:-1] + 1
        lengths = np.maximum(words - 1, 0).astype(np.float64)  # bigrams, as pycocoevalcap
        return sent[pos], gids.ravel()[rep], order, tf, lengths
