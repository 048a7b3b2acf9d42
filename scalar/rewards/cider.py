"""Fast CIDEr-D (no Java), numerically equal to pycocoevalcap's ``Cider``.

pycocoevalcap's scorer (``cider_scorer.py``) does, per candidate ``h`` with references
``r_1..r_m``: n-gram counts for n = 1..4; tf-idf weights ``tf * (log(D) - log(max(1, df)))``
with ``D`` documents (one document = the reference set of one candidate); per order n the
clipped cosine ``sum_g min(h_g, r_g) * r_g / (|h| |r|)`` times a Gaussian length penalty
``exp(-(l_h - l_r)^2 / (2 sigma^2))``; mean over orders, mean over references, times 10.
Quirk kept on purpose: its "length" is the number of bigrams (``max(0, words - 1)``).

Here document frequencies can come once from a training corpus (``CiderD(refs_corpus)``,
the usual choice for SCST rewards) or, with ``CiderD()``, from the references of each
scored batch exactly as pycocoevalcap does. Words and n-grams get exact integer ids
(an n-gram's id is looked up from its prefix's id and its last word), counting is done
on packed per-batch codes with numpy, and reference statistics are cached per
reference set, so a call costs a few dozen vectorised operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, repeat

import numpy as np

from scalar.metrics.text import simple_tokenize
from scalar.rewards.ngrams import (
    SHIFT,
    Arena,
    NgramIndex,
    argsort_keys,
    concat_ranges,
    find_sorted,
)

__all__ = ["CiderD", "simple_tokenize"]

_I64 = np.int64


class CiderD:
    """CIDEr-D scorer (pycocoevalcap's formula) with cached, vectorised n-gram statistics.

    ``refs_corpus``: training references, one list of sentences per image; their document
    frequencies and ``log(len(refs_corpus))`` are computed once. ``None``: document
    frequencies come from the references of each ``score`` call, which reproduces
    ``pycocoevalcap.cider.cider.Cider().compute_score`` exactly.
    ``tokenize``: sentence -> tokens (default ``simple_tokenize``; ``str.split`` for
    already tokenised text). Scores lie in [0, 10]. Caches grow with the distinct
    reference sets scored and their n-grams; candidates add nothing to them.
    """

    def __init__(
        self,
        refs_corpus: Sequence[Sequence[str]] | None = None,
        n: int = 4,
        sigma: float = 6.0,
        tokenize: Callable[[str], list[str]] = simple_tokenize,
    ):
        self._index = NgramIndex(n, tokenize)
        self.n, self.sigma, self.tokenize = int(n), float(sigma), tokenize
        self._slot: dict = {}  # reference set (corpus index or tuple of texts) -> row of _meta
        self._meta, self._ent, self._u = Arena(6, _I64), Arena(5, _I64), Arena(2, _I64)
        self._ukey = Arena(1, _I64)  # sorted keys of the rows of _u (contiguous for searches)
        self._u.append(np.zeros((1, 2), dtype=_I64))  # a first row no search finds (key -2):
        self._ukey.append(np.full((1, 1), -2, dtype=_I64))  # searches never meet an empty table
        self._rows = Arena(1 + self.n, np.float64)
        self._rows.append(np.zeros((1, 1 + self.n)))  # row 0: padding of the pair grid
        self.refs_corpus = None if refs_corpus is None else [tuple(r) for r in refs_corpus]
        self._idf: np.ndarray | None = None  # corpus idf by id, then log(D) for id -1
        self.ref_len = 0.0
        if self.refs_corpus is not None:
            if not self.refs_corpus:
                raise ValueError("refs_corpus is empty")
            empty = [i for i, r in enumerate(self.refs_corpus) if not r]
            if empty:
                raise ValueError(f"refs_corpus rows without references: {empty[:5]}")
            self._idf = self._corpus_idf(self.refs_corpus)

    def _corpus_idf(self, corpus: list[tuple[str, ...]]) -> np.ndarray:
        sizes = np.fromiter(map(len, corpus), dtype=_I64, count=len(corpus))
        sent, gid, _, _, _ = self._index.count(list(chain.from_iterable(corpus)), intern=True)
        doc = np.repeat(np.arange(len(corpus), dtype=_I64), sizes)[sent]
        pairs = np.sort(doc * SHIFT + gid)
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = pairs[1:] != pairs[:-1]
        df = np.bincount(pairs[first] % SHIFT, minlength=self._index.size + 1).astype(np.float64)
        self.ref_len = float(np.log(float(len(corpus))))
        return self.ref_len - np.log(np.maximum(df, 1.0))  # the extra last entry: log(D)

    def _grow_idf(self) -> None:
        """N-grams interned after the corpus (literal reference sets) get ``log(D)`` too."""
        extra = self._index.size + 1 - len(self._idf)
        if extra > 0:
            self._idf = np.concatenate([self._idf, np.full(extra, self.ref_len)])

    def _add_sets(self, keys: list) -> None:
        """Count and store the reference sets ``keys`` (corpus indices or tuples of texts).

        Arenas: ``_ent`` rows (n-gram id, order - 1, reference within its set, index into
        the set's distinct ids, tf), sorted by id within a set; ``_u`` rows per distinct
        n-gram of a set (``slot * SHIFT + id``, first entry, entry count): its first
        column is sorted over the whole arena, so any candidate n-gram is found in its
        set with one search; ``_rows`` per reference (bigram length, corpus tf-idf norm
        per order); ``_meta`` per set (entry start, count, distinct start, count,
        reference start, count).
        """
        texts = [self.refs_corpus[k] if isinstance(k, int) else k for k in keys]
        m = np.fromiter(map(len, texts), dtype=_I64, count=len(texts))
        sent, gid, order, tf, lengths = self._index.count(list(chain.from_iterable(texts)), True)
        set_of = np.repeat(np.arange(len(keys), dtype=_I64), m)[sent]
        ref = sent - np.repeat(np.cumsum(m) - m, m)[sent]
        srt = np.lexsort((gid, set_of))
        set_of, gid, order, ref, tf = set_of[srt], gid[srt], order[srt], ref[srt], tf[srt]
        new = np.ones(len(gid), dtype=bool)
        new[1:] = (gid[1:] != gid[:-1]) | (set_of[1:] != set_of[:-1])
        sizes = np.bincount(set_of, minlength=len(keys))
        u_sizes = np.bincount(set_of[new], minlength=len(keys))
        uidx = np.cumsum(new) - 1 - np.repeat(np.cumsum(u_sizes) - u_sizes, sizes)
        rows = np.zeros((len(lengths), 1 + self.n))
        rows[:, 0] = lengths
        if self._idf is not None:
            self._grow_idf()
            val = tf * self._idf[gid]
            glob_ref = ref + np.repeat(np.cumsum(m) - m, sizes)
            sq = np.bincount(glob_ref * self.n + order, val**2, minlength=len(lengths) * self.n)
            rows[:, 1:] = np.sqrt(sq).reshape(-1, self.n)
        s0 = self._meta.size
        e0 = self._ent.append(np.stack([gid, order, ref, uidx, tf.astype(_I64)], axis=1))
        first = np.flatnonzero(new)
        count = np.diff(first, append=len(gid))
        u_key = (s0 + set_of[first]) * SHIFT + gid[first]
        u0 = self._u.append(np.stack([e0 + first, count], axis=1))
        self._ukey.append(u_key[:, None])
        m0 = self._rows.append(rows)
        meta = np.stack([sizes, u_sizes, m], axis=1)
        starts = np.cumsum(meta, axis=0) - meta + np.array([e0, u0, m0])
        self._meta.append(
            np.stack([starts[:, 0], sizes, starts[:, 1], u_sizes, starts[:, 2], m], axis=1)
        )
        for i, k in enumerate(keys):
            self._slot[k] = s0 + i

    def _slots(self, keys: list) -> np.ndarray:
        slots = list(map(self._slot.get, keys, repeat(-1)))
        if -1 in slots:
            self._add_sets(list(dict.fromkeys(k for k, s in zip(keys, slots) if s < 0)))
            slots = list(map(self._slot.get, keys))
        return np.asarray(slots, dtype=_I64)

    # ----------------------------------------------------------------------- scoring
    def _keys(self, candidates, refs) -> list:
        """Hashable reference-set keys: corpus indices (int) or tuples of sentences."""
        if len(candidates) != len(refs):
            raise ValueError(f"{len(candidates)} candidates for {len(refs)} reference lists")
        n_corpus = -1 if self.refs_corpus is None else len(self.refs_corpus)
        if n_corpus > 0 and refs and all(type(r) is int for r in refs):  # the usual SCST call
            if 0 <= min(refs) and max(refs) < n_corpus:
                return list(refs)
        keys = []
        for i, r in enumerate(refs):
            if isinstance(r, int | np.integer):
                if not 0 <= r < n_corpus:
                    raise IndexError(f"reference id {r} of candidate {i}: no refs_corpus row")
                keys.append(int(r))
            else:
                r = (r,) if isinstance(r, str) else tuple(r)
                if not r:
                    raise ValueError(f"candidate {i} has no reference")
                keys.append(r)
        return keys

    def score(
        self, candidates: Sequence[str], refs: Sequence[Sequence[str]] | Sequence[int]
    ) -> np.ndarray:
        """Per-candidate CIDEr-D, float64 ``[len(candidates)]``.

        ``refs[i]``: the reference sentences of candidate ``i`` (a list of strings, or a
        single string), or an integer index into ``refs_corpus``.
        """
        slots = self._slots(self._keys(candidates, refs))
        n_c, n = len(candidates), self.n
        if n_c == 0:
            return np.zeros(0)
        e0, sizes, u0, u_sizes, m0, m = self._meta.data[slots].T
        mb = int(m.max())  # pairs (candidate, its j-th reference) on a [n_c, mb] grid
        j = np.arange(mb)
        rows = self._rows.data[np.where(j < m[:, None], m0[:, None] + j, 0)]  # 0: a zero row
        h_cand, h_ids, h_order, h_tf, h_len = self._index.count(candidates, intern=False)
        if self._idf is not None:
            idf_h = self._idf[h_ids]  # id -1: the last entry, log(D)
            r_norm = rows[:, :, 1:]
        else:
            idf_h, r_norm = self._batch_idf(h_ids, e0, sizes, u0, u_sizes, mb)
        h_val = h_tf * idf_h
        h_norm = np.sqrt(np.bincount(h_cand * n + h_order, h_val**2, minlength=n_c * n))

        # clipped dot products over the reference entries sharing an n-gram with the candidate
        # (an unknown n-gram's key (slot - 1) * SHIFT + SHIFT - 1 is no key: ids < SHIFT - 1)
        ukey = self._ukey.data[: self._ukey.size, 0]
        needles = slots[h_cand] * SHIFT + h_ids
        at = np.searchsorted(ukey, needles)
        hits = np.flatnonzero(ukey.take(at, mode="clip") == needles)
        first, count = self._u.data[at[hits]].T
        ent = self._ent.data[concat_ranges(first, count)]
        src = np.repeat(hits, count)  # the candidate entry of each matched reference entry
        hv, rv = h_val[src], ent[:, 4] * idf_h[src]  # same n-gram, so same idf
        key = (h_cand[src] * mb + ent[:, 2]) * n + ent[:, 1]
        dot = np.bincount(key, np.minimum(hv, rv) * rv, minlength=n_c * mb * n)

        denom = h_norm.reshape(n_c, 1, n) * r_norm
        sim = np.divide(dot.reshape(n_c, mb, n), denom, out=np.zeros(denom.shape), where=denom > 0)
        pen = np.exp((h_len[:, None] - rows[:, :, 0]) ** 2 * (-0.5 / self.sigma**2))
        return (10.0 / n) * (sim.sum(axis=2) * pen).sum(axis=1) / m

    def _batch_idf(self, h_ids, e0, sizes, u0, u_sizes, mb):
        """pycocoevalcap's df: one document per candidate, the union of its references.

        Returns the candidates' idf and the references' tf-idf norms ``[n_c, mb, n]``.
        """
        n, n_c = self.n, len(e0)
        ref_len = float(np.log(float(n_c)))
        u_ids = np.take(self._ukey.data[:, 0], concat_ranges(u0, u_sizes)) % SHIFT
        srt, s = argsort_keys(u_ids)
        first = np.ones(len(s), dtype=bool)
        first[1:] = s[1:] != s[:-1]
        starts = np.flatnonzero(first)
        df_run = np.diff(starts, append=len(s)).astype(np.float64)
        idf_run = ref_len - np.log(np.maximum(df_run, 1.0))
        idf_u = np.empty(len(s))
        idf_u[srt] = idf_run[np.cumsum(first) - 1]
        ent = np.take(self._ent.data, concat_ranges(e0, sizes), axis=0)
        r_u = ent[:, 3] + np.repeat(np.cumsum(u_sizes) - u_sizes, sizes)
        r_pair = ent[:, 2] + np.repeat(np.arange(n_c) * mb, sizes)
        r_val = ent[:, 4] * idf_u[r_u]
        sq = np.bincount(r_pair * n + ent[:, 1], r_val**2, minlength=n_c * mb * n)
        at, hit = find_sorted(s[starts], h_ids)
        idf_h = np.where(hit, idf_run[at] if len(s) else 0.0, ref_len)
        return idf_h, np.sqrt(sq).reshape(n_c, mb, n)

    def __call__(self, candidates, refs) -> np.ndarray:
        return self.score(candidates, refs)

    def compute_score(self, gts: dict, res: dict) -> tuple[float, np.ndarray]:
        """pycocoevalcap-style call: ``gts[k]`` refs, ``res[k] = [candidate]``."""
        if gts.keys() != res.keys():
            raise ValueError("gts and res have different keys")
        keys = list(gts.keys())
        for k in keys:
            if len(res[k]) != 1:
                raise ValueError(f"res[{k!r}] must hold exactly one candidate")
        scores = self.score([res[k][0] for k in keys], [gts[k] for k in keys])
        return float(scores.mean()) if len(scores) else float("nan"), scores
