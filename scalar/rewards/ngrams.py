"""Exact integer ids for words and n-grams, and vectorised n-gram counting.

Used by :mod:`scalar.rewards.cider`. A word's id is also its unigram's id; a k-gram's id
is looked up from ``(id of its (k-1)-gram prefix, id of its last word)``, so ids are exact
(no hashing) and new texts only add entries when ``intern=True`` (references). Interning
goes through dicts; lookups without interning (candidates) search a sorted int64 copy of
the n-gram table, one ``searchsorted`` per order for the whole batch, since at a few
hundred tokens per call the cost is the number of numpy calls, not the arithmetic.
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
    """A growable stack of rows of shape ``row`` (amortised doubling); ``data[:size]``."""

    def __init__(self, row: tuple[int, ...], dtype):
        self.data, self.size = np.zeros((16, *row), dtype=dtype), 0

    def append(self, rows: np.ndarray) -> int:
        start, end = self.size, self.size + len(rows)
        if end > len(self.data):
            grown = np.zeros((max(end, 2 * len(self.data)), *self.data.shape[1:]), self.data.dtype)
            grown[:start] = self.data[:start]
            self.data = grown
        self.data[start:end] = rows
        self.size = end
        return start

    def widen(self, width: int) -> None:
        """Zero-pad the first axis of the rows to ``width`` (no-op if already that wide)."""
        if width > self.data.shape[1]:
            grown = np.zeros((len(self.data), width, *self.data.shape[2:]), self.data.dtype)
            grown[:, : self.data.shape[1]] = self.data
            self.data = grown


def argsort_keys(keys: np.ndarray, bound: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(order, keys[order])`` for non-negative int64 keys (``< bound`` if given), ties in
    any order.

    One sort of ``key << b | index`` when that fits in int64 (several times faster than
    ``np.argsort`` here), else ``np.argsort``.
    """
    b = max(len(keys) - 1, 1).bit_length()
    if not len(keys) or (int(keys.max()) if bound is None else bound - 1) < 1 << (62 - b):
        packed = (keys << b) | np.arange(len(keys))
        packed.sort()
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
    ends = sizes.cumsum()
    out = (starts - ends + sizes).repeat(sizes)
    out += np.arange(len(out))
    return out


def tokens(
    texts: Sequence[str], tokenize: Callable[[str], list[str]], words=()
) -> tuple[list, object]:
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
        if joined.count(_SEP) == len(texts) and _SEP not in words:  # nor is it a word
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
        self._codes = np.full(1, -(1 << 62), dtype=_I64)  # ext's codes, sorted, and their
        self._ids = np.full(1, -1, dtype=_I64)  # ids; first a code no n-gram has
        self._pending: list = []  # (codes, first id) interned since (merged by _lookup)
        self._scratch = np.zeros(0, dtype=np.int32)  # per-batch token codes, by word id
        # (memory: about 20 bytes per id for these arrays, besides the dicts)

    def _new_ids(self, k: int) -> int:
        """Reserve ``k`` consecutive new ids; returns the first."""
        if self.size + k > SHIFT - 1:  # SHIFT - 1 stays unused: see _lookup, CiderD.score
            raise OverflowError("more than 2**31 - 1 distinct n-grams")
        self.size += k
        return self.size - k

    def _intern(self, table: dict, keys: list) -> None:
        """Give the (new, distinct) ``keys`` consecutive ids in ``table``."""
        start = self._new_ids(len(keys))
        table.update(zip(keys, range(start, start + len(keys))))

    def _extend(self, prev: np.ndarray, word: np.ndarray, out: np.ndarray) -> None:
        """Intern the k-grams of a row of (k-1)-gram ids ``prev``; their ids to ``out``.

        The k-gram at p is ``prev[p]`` + ``word[p]``; only where both its (k-1)-grams
        ``prev[p]`` and ``prev[p + 1]`` are known is it an n-gram (no separator in it).
        """
        at = ((prev[:-1] | prev[1:]) >= 0).nonzero()[0]  # both >= 0: no sign bit in the or
        codes = (prev[:-1] * SHIFT + word).take(at).tolist()
        found = np.fromiter(map(self.ext.get, codes, repeat(-1)), dtype=_I64, count=len(codes))
        miss = (found < 0).nonzero()[0].tolist()
        if miss:
            new = list(dict.fromkeys(map(codes.__getitem__, miss)))
            self._intern(self.ext, new)
            self._pending.append((new, self.size - len(new)))
            found[miss] = np.fromiter(map(self.ext.__getitem__, map(codes.__getitem__, miss)), _I64)
        out.fill(-1)
        out[at] = found

    def _lookup(self, prev: np.ndarray, word: np.ndarray, out: np.ndarray) -> None:
        """Ids of the k-grams ``prev[p]`` + ``word[p]`` (-1: unknown) to ``out``, as
        ``_extend`` without interning.

        Searches a sorted copy of ``ext`` (its codes and ids, brought up to date here by
        merging the codes interned since). Where either id is -1 the code is negative or
        ends in the unused word id ``SHIFT - 1``, so it is found nowhere.
        """
        if self._pending:
            new = np.concatenate([np.array(c, dtype=_I64) for c, _ in self._pending])
            ids = np.concatenate([np.arange(i, i + len(c)) for c, i in self._pending])
            srt = new.argsort()
            at = self._codes.searchsorted(new[srt])
            self._codes = np.insert(self._codes, at, new[srt])
            self._ids = np.insert(self._ids, at, ids[srt])
            self._pending = []
        codes = prev[:-1] * SHIFT
        codes += word
        at = self._codes.searchsorted(codes)
        hit = self._codes.take(at, mode="clip") == codes
        np.multiply(at, hit, out=at)  # a miss: row 0, the sentinel, whose id is -1
        self._ids.take(at, out=out, mode="clip")

    def count(self, texts: Sequence[str], intern: bool):
        """Distinct n-grams of each text: ``(text index, id, order - 1, tf)`` arrays + lengths.

        Rows are sorted by text, then id; a text's unknown n-grams (id -1, ``intern=False``)
        come last, told apart and counted exactly by their per-batch codes (a token's code:
        1 + a position where it occurs; a k-gram's: its tokens' codes in base
        ``len(tokens) + 1``). A batch whose sort keys would not fit in int64 is split in
        halves.
        """
        n, n_t = self.n, len(texts)
        if not n_t:
            return tuple(np.zeros(0, dtype=d) for d in (_I64, _I64, _I64, float, float))
        toks, sep = tokens(texts, self.tokenize, self.words)
        total = len(toks)
        base = total + 1
        span = SHIFT + base**n  # sort key of an n-gram within its text: id, or SHIFT + code
        if n_t * span >= 1 << 62:
            if n_t == 1:
                raise ValueError(f"a sentence of {total - 1} tokens is too long to count")
            h = n_t // 2
            a, b = self.count(texts[:h], intern), self.count(texts[h:], intern)
            b = (b[0] + h, *b[1:])
            return tuple(np.concatenate([x, y]) for x, y in zip(a, b))
        wid = np.fromiter(map(self.words.get, toks, repeat(-1)), _I64, total)  # -1: unknown
        unk = (wid < 0).nonzero()[0]  # unknown words and separators
        if intern:
            new = dict.fromkeys(map(toks.__getitem__, unk.tolist()))
            new.pop(sep, None)
            self._intern(self.words, list(new))
            wid[unk] = np.fromiter(
                map(self.words.get, map(toks.__getitem__, unk.tolist()), repeat(-1)), _I64, len(unk)
            )
            unk = unk[wid.take(unk) < 0]
        # per-batch token codes 1..total (a position where the token occurs, plus 1), written
        # to and read from a scratch row by token id (unknown tokens: -1, -2, ..., shifted)
        local: dict = {}
        ident = wid.copy()
        ident[unk] = np.fromiter(
            map(local.setdefault, map(toks.__getitem__, unk.tolist()), count(-1, -1)),
            _I64,
            len(unk),
        )
        ident += len(unk) + 1
        if len(self._scratch) < self.size + len(unk) + 1:
            self._scratch = np.empty((self.size + len(unk) + 1) * 5 // 4, dtype=np.int32)
        self._scratch[ident] = np.arange(1, total + 1, dtype=np.int32)
        code = self._scratch.take(ident).astype(_I64)
        s = code[-1]  # every text ends with the separator
        is_sep = code == s
        sent = is_sep.cumsum()  # the text of each token (+1 on separators)
        sent -= is_sep
        ends = is_sep.nonzero()[0]  # the separator closing each text
        rest = ends.take(sent) - np.arange(total)  # words left in the text from p
        codes = np.empty((n, total), dtype=_I64)  # codes[k - 1, p]: the k-gram at p (valid
        codes[0] = code  # where k <= rest[p]; elsewhere unused)
        ids = np.empty((n, total), dtype=_I64)  # its id (-1: unknown)
        ids[0] = wid
        step = self._extend if intern else self._lookup
        for k in range(1, min(n, total)):
            np.multiply(codes[k - 1, : total - k], base, out=codes[k, : total - k])
            codes[k, : total - k] += code[k:]
            step(ids[k - 1, : total - k + 1], wid[k:], ids[k, : total - k])
        at = (rest > np.arange(n)[:, None]).ravel().nonzero()[0]  # valid, in the [n, total] grid
        key = np.where(ids >= 0, ids, codes + SHIFT)  # codes of different orders differ
        key += sent * span
        o, ks = argsort_keys(key.ravel().take(at), n_t * span)
        bounds = np.zeros(1, dtype=_I64)  # of the runs of equal keys
        if len(ks):
            bounds = np.concatenate([bounds, (ks[1:] != ks[:-1]).nonzero()[0] + 1, [len(ks)]])
        starts, tf = bounds[:-1], bounds[1:] - bounds[:-1]
        rep = at.take(o.take(starts))
        order, pos = np.divmod(rep, total)
        lengths = np.maximum(np.bincount(sent, minlength=n_t) - 2.0, 0.0)  # bigrams, as coco
        return sent.take(pos), ids.ravel().take(rep), order, tf, lengths
