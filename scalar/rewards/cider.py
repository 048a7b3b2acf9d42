"""Fast CIDEr-D (no Java), numerically equal to pycocoevalcap's ``Cider``.

pycocoevalcap's scorer (``cider_scorer.py``) does, per candidate ``h`` with references
``r_1..r_m``: n-gram counts for n = 1..4; tf-idf weights ``tf * (log(D) - log(max(1, df)))``
with ``D`` documents (one document = the reference set of one candidate); per order n the
clipped cosine ``sum_g min(h_g, r_g) * r_g / (|h| |r|)`` times a Gaussian length penalty
``exp(-(l_h - l_r)^2 / (2 sigma^2))``; mean over orders, mean over references, times 10.
Quirk kept on purpose: its "length" is the number of bigrams (``max(0, words - 1)``).

Differences here: document frequencies can come once from a training corpus
(``CiderD(refs_corpus)``, the usual choice for SCST rewards), or, with
``CiderD()``, from the references of each scored batch exactly as pycocoevalcap does.
N-grams are interned to integer ids; counts come from ``collections.Counter`` (C code);
tf-idf, norms, the clipped dot products and penalties are vectorised numpy over the
whole batch. Reference n-gram counts are cached per reference string.
"""

from __future__ import annotations

from collections import _count_elements  # C counter behind Counter.update
from collections.abc import Callable, Sequence
import numpy as np

from scalar.metrics.text import simple_tokenize

__all__ = ["CiderD", "simple_tokenize"]


class _Block:
    """N-gram statistics of one reference set (the references of one candidate).

    Entries (one per distinct n-gram of each reference) are sorted by n-gram id:
    ``ids``, ``tf``, ``order`` (n - 1), ``ref`` (which reference), ``uidx`` (index into
    ``u``, the sorted distinct n-gram ids of the whole set = its document). ``lengths``:
    bigram counts per reference. With corpus idf, ``val`` and ``norm`` are cached too.
    """

    __slots__ = ("ids", "tf", "order", "ref", "u", "uidx", "lengths", "m", "val", "norm")


class CiderD:
    """CIDEr-D scorer (pycocoevalcap's formula) with cached, vectorised n-gram statistics.

    ``refs_corpus``: training references, one list of sentences per image; their document
    frequencies (and ``log(len(refs_corpus))``) are computed once. ``None``: document
    frequencies come from the references of each ``score`` call, which reproduces
    ``pycocoevalcap.cider.cider.Cider().compute_score`` exactly.
    ``tokenize``: sentence -> tokens (default ``simple_tokenize``; ``str.split`` for
    already tokenised text). Scores lie in [0, 10].
    Caches grow with the distinct reference sets scored (bounded by the corpora used).
    """

    def __init__(
        self,
        refs_corpus: Sequence[Sequence[str]] | None = None,
        n: int = 4,
        sigma: float = 6.0,
        tokenize: Callable[[str], list[str]] = simple_tokenize,
    ):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.sigma, self.tokenize = int(n), float(sigma), tokenize
        self._ids: dict[tuple[str, ...], int] = {}  # interned n-grams of every reference
        self._blocks: dict = {}  # reference set (tuple of strings or corpus index) -> _Block
        self.refs_corpus = None if refs_corpus is None else [tuple(r) for r in refs_corpus]
        self._idf: np.ndarray | None = None
        self.ref_len = 0.0
        if self.refs_corpus is not None:
            if not self.refs_corpus:
                raise ValueError("refs_corpus is empty")
            docs = [self._block(i).u for i in range(len(self.refs_corpus))]
            df = np.bincount(np.concatenate(docs), minlength=len(self._ids))
            self.ref_len = float(np.log(float(len(self.refs_corpus))))
            self._idf = self.ref_len - np.log(np.maximum(df.astype(np.float64), 1.0))
            for b in self._blocks.values():
                self._cache_values(b)

    # ----------------------------------------------------------------- n-gram counting
    def _counts(self, text: str) -> tuple[dict, int]:
        """N-gram (tuple) -> count for n = 1..self.n, and the bigram count."""
        t = self.tokenize(text)
        counts: dict = {}
        for k in range(1, self.n + 1):
            _count_elements(counts, zip(*[t[i:] for i in range(k)]))
        return counts, max(len(t) - 1, 0)

    def _block(self, key) -> _Block:
        """Statistics of a reference set (a corpus index or a tuple of strings), cached."""
        b = self._blocks.get(key)
        if b is not None:
            return b
        texts = self.refs_corpus[key] if isinstance(key, int) else key
        ids, tf, order, ref, lengths = [], [], [], [], []
        intern = self._ids.setdefault
        for j, text in enumerate(texts):
            counts, length = self._counts(text)
            ids.extend([intern(g, len(self._ids)) for g in counts])
            tf.extend(counts.values())
            order.extend(map(len, counts))
            ref.extend([j] * len(counts))
            lengths.append(length)
        ids = np.asarray(ids, dtype=np.int64)
        sort = np.argsort(ids, kind="stable")
        b = _Block()
        b.ids = ids[sort]
        b.tf = np.asarray(tf, dtype=np.float64)[sort]
        b.order = np.asarray(order, dtype=np.int64)[sort] - 1
        b.ref = np.asarray(ref, dtype=np.int64)[sort]
        new = np.ones(len(b.ids), dtype=bool)
        new[1:] = b.ids[1:] != b.ids[:-1]
        b.u, b.uidx = b.ids[new], np.cumsum(new) - 1
        b.lengths = np.asarray(lengths, dtype=np.float64)
        b.m = len(texts)
        b.val = b.norm = None
        if self._idf is not None:
            self._cache_values(b)
        self._blocks[key] = b
        return b

    def _idf_of(self, ids: np.ndarray) -> np.ndarray:
        """Corpus idf; n-grams interned after the corpus (df 0) get ``log(D)``."""
        n_known = len(self._idf)
        ok = ids < n_known
        return np.where(ok, self._idf[np.where(ok, ids, 0)], self.ref_len)

    def _cache_values(self, b: _Block) -> None:
        b.val = b.tf * self._idf_of(b.ids)
        sq = np.bincount(b.ref * self.n + b.order, b.val**2, minlength=b.m * self.n)
        b.norm = np.sqrt(sq).reshape(b.m, self.n)

    # ----------------------------------------------------------------------- scoring
    def _keys(self, candidates, refs) -> list:
        if len(candidates) != len(refs):
            raise ValueError(f"{len(candidates)} candidates for {len(refs)} reference lists")
        keys = []
        for i, r in enumerate(refs):
            if isinstance(r, int | np.integer):
                if self.refs_corpus is None:
                    raise ValueError("reference ids need CiderD(refs_corpus=...)")
                if not 0 <= r < len(self.refs_corpus):
                    raise IndexError(f"reference id {r} not in [0, {len(self.refs_corpus)})")
                key = int(r)
            else:
                key = (r,) if isinstance(r, str) else tuple(r)
            if (self.refs_corpus[key] if isinstance(key, int) else key) == ():
                raise ValueError(f"candidate {i} has no reference")
            keys.append(key)
        return keys

    def score(
        self, candidates: Sequence[str], refs: Sequence[Sequence[str]] | Sequence[int]
    ) -> np.ndarray:
        """Per-candidate CIDEr-D, float64 ``[len(candidates)]``.

        ``refs[i]``: the reference sentences of candidate ``i`` (a list of strings, or a
        single string), or an integer index into ``refs_corpus``.
        """
        blocks = [self._block(k) for k in self._keys(candidates, refs)]
        n_c, n = len(candidates), self.n
        if n_c == 0:
            return np.zeros(0)
        span = len(self._ids) + 1
        cand = np.arange(n_c)
        m = np.fromiter((b.m for b in blocks), dtype=np.int64, count=n_c)
        sizes = np.fromiter((len(b.ids) for b in blocks), dtype=np.int64, count=n_c)
        u_sizes = np.fromiter((len(b.u) for b in blocks), dtype=np.int64, count=n_c)
        pair_cand = np.repeat(cand, m)
        n_p = len(pair_cand)
        r_pair = np.concatenate([b.ref for b in blocks]) + np.repeat(np.cumsum(m) - m, sizes)
        r_order = np.concatenate([b.order for b in blocks])
        r_ids = np.concatenate([b.ids for b in blocks])
        r_len = np.concatenate([b.lengths for b in blocks])
        u_key = np.concatenate([b.u for b in blocks]) + np.repeat(cand * span, u_sizes)
        r_u = np.concatenate([b.uidx for b in blocks]) + np.repeat(np.cumsum(u_sizes) - u_sizes, sizes)

        # candidates: interned ids (-1: n-gram of no reference seen so far)
        get = self._ids.get
        h_ids, h_tf, h_order, h_sizes, h_len = [], [], [], [], np.empty(n_c)
        for i, text in enumerate(candidates):
            counts, h_len[i] = self._counts(text)
            h_ids.extend(map(get, counts, [-1] * len(counts)))
            h_tf.extend(counts.values())
            h_order.extend(map(len, counts))
            h_sizes.append(len(counts))
        h_ids = np.asarray(h_ids, dtype=np.int64)
        h_order = np.asarray(h_order, dtype=np.int64) - 1
        h_cand = np.repeat(cand, h_sizes)

        if self._idf is not None:
            ref_len = self.ref_len
            idf_h = np.where(h_ids >= 0, self._idf_of(h_ids), ref_len)
            r_val = np.concatenate([b.val for b in blocks])
            r_norm = np.concatenate([b.norm for b in blocks])
        else:  # pycocoevalcap: one document per candidate, the union of its references
            ref_len = float(np.log(float(n_c)))
            doc = np.sort(u_key % span)
            first = np.ones(len(doc), dtype=bool)
            first[1:] = doc[1:] != doc[:-1]
            starts = np.flatnonzero(first)
            uniq, df = doc[starts], np.diff(np.append(starts, len(doc)))
            idf_u = ref_len - np.log(np.maximum(df.astype(np.float64), 1.0))
            r_val = np.concatenate([b.tf for b in blocks]) * idf_u[np.searchsorted(uniq, r_ids)]
            sq = np.bincount(r_pair * n + r_order, r_val**2, minlength=n_p * n)
            r_norm = np.sqrt(sq).reshape(n_p, n)
            if len(uniq):
                pos = np.minimum(np.searchsorted(uniq, h_ids), len(uniq) - 1)
                idf_h = np.where(uniq[pos] == h_ids, idf_u[pos], ref_len)
            else:
                idf_h = np.full(len(h_ids), ref_len)
        h_val = np.asarray(h_tf, dtype=np.float64) * idf_h
        h_sq = np.bincount(h_cand * n + h_order, h_val**2, minlength=n_c * n)
        h_norm = np.sqrt(h_sq).reshape(n_c, n)

        # clipped dot products: candidate values scattered onto its reference set's n-grams
        hv_u = np.zeros(len(u_key) + 1)
        h_key = h_cand * span + h_ids
        pos = np.searchsorted(u_key, h_key)
        hit = (h_ids >= 0) & (u_key[np.minimum(pos, len(u_key) - 1)] == h_key) if len(u_key) else h_ids < -1
        hv_u[pos[hit]] = h_val[hit]
        hv = hv_u[r_u]
        dot = np.bincount(r_pair * n + r_order, np.minimum(hv, r_val) * r_val, minlength=n_p * n)

        denom = h_norm[pair_cand] * r_norm
        sim = np.divide(dot.reshape(n_p, n), denom, out=np.zeros((n_p, n)), where=denom != 0)
        pen = np.exp(-((h_len[pair_cand] - r_len) ** 2) / (2 * self.sigma**2))
        per_pair = sim.mean(axis=1) * pen
        return 10.0 * np.bincount(pair_cand, per_pair, minlength=n_c) / m

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
