"""Exact integer ids for words and n-grams, and vectorised n-gram counting.

Used by :mod:`scalar.rewards.cider`. A word's id is also its unigram's id; a k-gram's id
is looked up from ``(id of its (k-1)-gram prefix, id of its last word)``, so ids are exact
(no hashing) and new texts only add entries when ``intern=True`` (references).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, repeat

import numpy as np

SHIFT = 1 << 31  # n-gram id = ext[(prefix id) * SHIFT + (last word id)]
_I64 = np.int64


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
        if self.size >= SHIFT:
            raise OverflowError("more than 2**31 distinct n-grams")
        self.size += 1
        return self.size - 1

    def _word_ids(self, words: list[str], intern: bool) -> np.ndarray:
        """Word ids; unknown words get -2, -3, ... (distinct per word) unless interned."""
        ids = np.fromiter(map(self.words.get, words, repeat(-1)), dtype=_I64, count=len(words))
        local: dict[str, int] = {}
        for i in np.flatnonzero(ids < 0).tolist():
            w = words[i]
            if not intern:
                ids[i] = -2 - local.setdefault(w, len(local))
            elif w in self.words:  # a repeat of a word interned earlier in this call
                ids[i] = self.words[w]
            else:
                ids[i] = self.words[w] = self._new_id()
        return ids

    def _extend(self, prefix: np.ndarray, word: np.ndarray, ok: np.ndarray, intern: bool):
        """Ids of n-grams ``prefix + word`` where ``ok`` (-1 elsewhere, or where unknown)."""
        out = np.full(len(prefix), -1, dtype=_I64)
        ok = ok & (prefix >= 0) & (word >= 0)
        codes = (prefix[ok] * SHIFT + word[ok]).tolist()
        found = np.fromiter(map(self.ext.get, codes, repeat(-1)), dtype=_I64, count=len(codes))
        if intern:
            for i in np.flatnonzero(found < 0).tolist():
                c = codes[i]
                found[i] = self.ext[c] = self.ext[c] if c in self.ext else self._new_id()
        out[ok] = found
        return out

    def count(self, texts: Sequence[str], intern: bool):
        """Distinct n-grams of each text: ``(text index, id, order - 1, tf)`` arrays + lengths.

        Counting uses exact per-batch codes (words numbered 1..W, base W + 1), so unknown
        n-grams (id -1) are still counted exactly; big batches are split to stay in int64.
        """
        toks = [self.tokenize(t) for t in texts]
        lens = np.fromiter(map(len, toks), dtype=_I64, count=len(toks))
        total = int(lens.sum())
        if (total + 1) ** self.n * len(toks) >= 1 << 62:
            if len(toks) == 1:
                raise ValueError(f"a sentence of {total} tokens is too long to count")
            half = len(texts) // 2
            a, b = self.count(texts[:half], intern), self.count(texts[half:], intern)
            b = (b[0] + half, *b[1:])
            return tuple(np.concatenate([x, y]) for x, y in zip(a, b))
        lengths = np.maximum(lens - 1, 0).astype(np.float64)
        wid = self._word_ids(list(chain.from_iterable(toks)), intern)
        srt, sw = argsort_keys(wid - min(int(wid.min()), 0) if total else wid)
        new = np.ones(total, dtype=_I64)
        new[1:] = sw[1:] != sw[:-1]
        lid = np.empty(total, dtype=_I64)
        lid[srt] = np.cumsum(new)  # 1..W, equal words equal codes
        base = int(lid.max()) + 1 if total else 1
        sent = np.repeat(np.arange(len(toks), dtype=_I64), lens)
        rem = np.repeat(np.cumsum(lens), lens) - np.arange(total)  # words left from p
        code, gid = lid, np.maximum(wid, -1)
        all_pos, all_code, all_gid = [np.arange(total)], [code], [gid]
        for k in range(2, min(self.n, total) + 1):
            size = total - k + 1  # k-grams start at 0..size-1; those crossing sentences drop
            code = code[:size] * base + lid[k - 1 :]  # a k-gram's code: [base^(k-1), base^k)
            ok = rem[:size] >= k
            gid = self._extend(gid[:size], wid[k - 1 :], ok, intern)
            at = np.flatnonzero(ok)
            all_pos.append(at)
            all_code.append(code[at])
            all_gid.append(gid[at])
        order = np.repeat(np.arange(len(all_pos), dtype=_I64), [len(x) for x in all_pos])
        pos, gid, code = (np.concatenate(x) for x in (all_pos, all_gid, all_code))
        key = sent[pos] * base**self.n + code
        o, ks = argsort_keys(key)
        first = np.ones(len(ks), dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
        starts = np.flatnonzero(first)
        rep = o[starts]
        tf = np.empty(len(starts))
        tf[:-1] = starts[1:] - starts[:-1]
        tf[-1:] = len(ks) - starts[-1:]
        return sent[pos[rep]], gid[rep], order[rep], tf, lengths
