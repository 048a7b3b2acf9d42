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
reference set (with corpus frequencies: each entry's tf-idf value and that value over
its reference's norm), so a call costs a few dozen vectorised operations: one search
finds every candidate n-gram's entries in its references, one ``bincount`` sums the
clipped products straight onto (candidate, reference) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain

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
        self._slot: dict = {}  # reference set given as a tuple of texts -> its slot
        self._meta = Arena((5,), _I64)  # per slot: entry start, count, row start, count, refs
        self._len = Arena((1,), np.float64)  # per slot: bigram length of each reference
        self._scale = Arena((), np.float64)  # per slot: 10 / (n * its number of references)
        self._ent = Arena((6,), np.float64)  # per entry: see _add_sets
        self._u = Arena((2,), _I64)  # per distinct n-gram of a set: first entry, entry count
        self._ukey = Arena((), _I64)  # its key slot * SHIFT + id, sorted over the arena
        self._u.append(np.zeros((1, 2), dtype=_I64))  # a first row no search finds (key -2):
        self._ukey.append(np.full(1, -2, dtype=_I64))  # searches never meet an empty table
        self.refs_corpus = None if refs_corpus is None else [tuple(r) for r in refs_corpus]
        self._idf: np.ndarray | None = None  # corpus idf by id, then log(D) for id -1
        self._cslot: np.ndarray | None = None  # corpus row -> its slot (-1: not cached)
        self.ref_len = 0.0
        if self.refs_corpus is not None:
            if not self.refs_corpus:
                raise ValueError("refs_corpus is empty")
            empty = [i for i, r in enumerate(self.refs_corpus) if not r]
            if empty:
                raise ValueError(f"refs_corpus rows without references: {empty[:5]}")
            self._idf = self._corpus_idf(self.refs_corpus)
            self._cslot = np.full(len(self.refs_corpus), -1, dtype=_I64)
            self._cslot_list = [-1] * len(self.refs_corpus)  # the same, for fast lookups
            self._len.widen(max(map(len, self.refs_corpus)))

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

        Arenas: ``_ent`` rows (reference within its set, order - 1, index into the set's
        distinct n-grams, tf, and with corpus frequencies tf-idf value ``v`` and
        ``v / |reference's order vector|``), sorted by id within a set; ``_u`` and
        ``_ukey`` rows per distinct n-gram of a set (first entry, entry count; key
        ``slot * SHIFT + id``, sorted over the whole arena, so any candidate n-gram is
        found in its set with one search); ``_len`` per set: its references' bigram
        lengths, zero-padded; ``_meta`` per set (entry start, count, distinct start,
        count, number of references).
        """
        texts = [self.refs_corpus[k] if isinstance(k, int) else k for k in keys]
        m = np.fromiter(map(len, texts), dtype=_I64, count=len(texts))
        sent, gid, order, tf, lengths = self._index.count(list(chain.from_iterable(texts)), True)
        set_of = np.repeat(np.arange(len(keys), dtype=_I64), m)[sent]
        ref = sent - (np.cumsum(m) - m)[set_of]
        srt = np.lexsort((gid, set_of))
        set_of, gid, order, ref, tf, sent = (x[srt] for x in (set_of, gid, order, ref, tf, sent))
        new = np.ones(len(gid), dtype=bool)
        new[1:] = (gid[1:] != gid[:-1]) | (set_of[1:] != set_of[:-1])
        sizes = np.bincount(set_of, minlength=len(keys))
        u_sizes = np.bincount(set_of[new], minlength=len(keys))
        uidx = np.cumsum(new) - 1 - np.repeat(np.cumsum(u_sizes) - u_sizes, sizes)
        val = scaled = np.zeros(len(gid))
        if self._idf is not None:
            self._grow_idf()
            val = tf * self._idf[gid]
            norm = np.sqrt(np.bincount(sent * self.n + order, val**2))[sent * self.n + order]
            scaled = np.divide(val, norm, out=np.zeros(len(val)), where=val != 0)  # 0: df = D
        s0 = self._meta.size
        e0 = self._ent.append(np.stack([ref, order, uidx, tf, val, scaled], axis=1))
        first = np.flatnonzero(new)
        count = np.diff(first, append=len(gid))
        u0 = self._u.append(np.stack([e0 + first, count], axis=1))
        self._ukey.append((s0 + set_of[first]) * SHIFT + gid[first])
        self._len.widen(int(m.max()))
        lens = np.zeros((len(keys), self._len.data.shape[1]))
        lens[np.repeat(np.arange(len(keys)), m), concat_ranges(np.zeros_like(m), m)] = lengths
        self._len.append(lens)
        self._scale.append(10.0 / (self.n * m))
        meta = np.stack([sizes, u_sizes], axis=1)
        starts = np.cumsum(meta, axis=0) - meta + np.array([e0, u0])
        self._meta.append(np.stack([starts[:, 0], sizes, starts[:, 1], u_sizes, m], axis=1))
        for i, k in enumerate(keys):
            if isinstance(k, int):
                self._cslot[k] = self._cslot_list[k] = s0 + i
            else:
                self._slot[k] = s0 + i

    # ----------------------------------------------------------------------- scoring
    def _slots(self, candidates, refs) -> np.ndarray:
        """Slot of each candidate's reference set, counting and caching new sets."""
        if len(candidates) != len(refs):
            raise ValueError(f"{len(candidates)} candidates for {len(refs)} reference lists")
        cs = self._cslot
        if cs is not None and refs and type(refs[0]) is int:
            try:  # the usual SCST call: corpus rows (anything else: below)
                slots = list(map(self._cslot_list.__getitem__, refs)) if min(refs) >= 0 else None
            except (IndexError, TypeError):
                slots = None
            if slots is not None:
                if -1 in slots:
                    self._add_sets(list(dict.fromkeys(r for r, s in zip(refs, slots) if s < 0)))
                    slots = list(map(self._cslot_list.__getitem__, refs))
                return np.array(slots, dtype=_I64)
        keys = []
        for i, r in enumerate(refs):
            if isinstance(r, int | np.integer):
                if cs is None or not 0 <= r < len(cs):
                    raise IndexError(f"reference id {r} of candidate {i}: no refs_corpus row")
                keys.append(int(r))
            else:
                r = (r,) if isinstance(r, str) else tuple(r)
                if not r:
                    raise ValueError(f"candidate {i} has no reference")
                keys.append(r)
        get = self._slot.get
        slots = [cs[k] if isinstance(k, int) else get(k, -1) for k in keys]
        if -1 in slots:
            new = [k for k, s in zip(keys, slots) if s < 0]
            self._add_sets(list(dict.fromkeys(new)))
            slots = [cs[k] if isinstance(k, int) else get(k) for k in keys]
        return np.asarray(slots, dtype=_I64)

    def score(
        self, candidates: Sequence[str], refs: Sequence[Sequence[str]] | Sequence[int]
    ) -> np.ndarray:
        """Per-candidate CIDEr-D, float64 ``[len(candidates)]``.

        ``refs[i]``: the reference sentences of candidate ``i`` (a list of strings, or a
        single string), or an integer index into ``refs_corpus``.
        """
        slots = self._slots(candidates, refs)
        n_c, n = len(candidates), self.n
        if n_c == 0:
            return np.zeros(0)
        mb = self._len.data.shape[1]  # pairs (candidate, its j-th reference) on a [n_c, mb] grid
        h_cand, h_ids, h_order, h_tf, h_len = self._index.count(candidates, intern=False)
        if self._idf is not None:
            idf_h = self._idf.take(h_ids)  # id -1: the last entry, log(D)
        else:
            idf_h, r_inv = self._batch_idf(h_ids, *self._meta.data.take(slots, axis=0).T[:4], mb)
        h_val = h_tf * idf_h
        h_co = h_cand * n + h_order
        # 1 / |candidate's order vector|; a zero norm has only zero values, any factor does
        h_inv = np.bincount(h_co, h_val * h_val, minlength=n_c * n)  # (int64 if no rows)
        h_inv = np.maximum(h_inv, 1e-300) ** -0.5

        # the reference entries sharing an n-gram with the candidate: rows come sorted by
        # candidate, then id, so the needles are sorted per candidate; an unknown n-gram's
        # needle ends in the unused id SHIFT - 1 and is found nowhere
        ukey = self._ukey.data[: self._ukey.size]
        needles = (slots * SHIFT).take(h_cand) + (h_ids & (SHIFT - 1))
        at = ukey.searchsorted(needles)
        hits = (ukey.take(at, mode="clip") == needles).nonzero()[0]
        first, count = self._u.data.take(at.take(hits), axis=0).T
        ent = self._ent.data.take(concat_ranges(first, count), axis=0)
        src = hits.repeat(count)  # the candidate entry of each matched reference entry
        pair = h_cand.take(src) * mb + ent[:, 0].astype(_I64)
        if self._idf is not None:
            r_val, r_scaled = ent[:, 4], ent[:, 5]
        else:
            r_val = ent[:, 3] * idf_h.take(src)  # same n-gram, so same idf
            r_scaled = r_val * r_inv.take(pair * n + h_order.take(src))
        clipped = np.minimum(h_val.take(src), r_val)
        clipped *= r_scaled * h_inv.take(h_co.take(src))
        sim = np.bincount(pair, clipped, minlength=n_c * mb).reshape(n_c, mb)
        pen = h_len[:, None] - self._len.data.take(slots, axis=0)
        pen *= pen * (-0.5 / self.sigma**2)
        pen = np.exp(pen, out=pen)
        pen *= sim  # (bincount gives int64 when nothing matched)
        return pen.sum(axis=1) * self._scale.data.take(slots)  # 10 / (n * references)

    def _batch_idf(self, h_ids, e0, sizes, u0, u_sizes, mb):
        """pycocoevalcap's df: one document per candidate, the union of its references.

        Returns the candidates' idf and the references' inverse tf-idf norms, flat
        ``[n_c * mb * n]`` (0 where a norm is 0).
        """
        n, n_c = self.n, len(e0)
        ref_len = float(np.log(float(n_c)))
        u_ids = np.take(self._ukey.data, concat_ranges(u0, u_sizes)) % SHIFT
        srt, s = argsort_keys(u_ids)
        first = np.ones(len(s), dtype=bool)
        first[1:] = s[1:] != s[:-1]
        starts = np.flatnonzero(first)
        df_run = np.diff(starts, append=len(s)).astype(np.float64)
        idf_run = ref_len - np.log(np.maximum(df_run, 1.0))
        idf_u = np.empty(len(s))
        idf_u[srt] = idf_run[np.cumsum(first) - 1]
        ent = np.take(self._ent.data, concat_ranges(e0, sizes), axis=0)
        col = ent[:, :3].astype(_I64)  # reference, order, distinct index
        r_u = col[:, 2] + np.repeat(np.cumsum(u_sizes) - u_sizes, sizes)
        r_pair = col[:, 0] + np.repeat(np.arange(n_c) * mb, sizes)
        r_val = ent[:, 3] * idf_u[r_u]
        norm = np.sqrt(np.bincount(r_pair * n + col[:, 1], r_val**2, minlength=n_c * mb * n))
        r_inv = np.divide(1.0, norm, out=np.zeros(len(norm)), where=norm > 0)
        at, hit = find_sorted(s[starts], h_ids)
        idf_h = np.where(hit, idf_run[at] if len(s) else 0.0, ref_len)
        return idf_h, r_inv

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
