"""CiderD against pycocoevalcap's Cider / CiderScorer and hand-worked values."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import CiderScorer, cook_refs

from scalar.rewards.cider import CiderD, simple_tokenize
from scalar.rewards.ngrams import NgramIndex

WORDS = "a man red shirt on the street dog runs ball two white cars park near tree".split()


def _sentence(rng: random.Random, lo: int = 0, hi: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _batch(seed: int, n: int = 40):
    rng = random.Random(seed)
    refs = [[_sentence(rng) for _ in range(rng.randint(1, 5))] for _ in range(n)]
    cands = [_sentence(rng) for _ in range(n)]
    cands[0] = ""  # empty candidate
    refs[1] = ["", "man on the street"]  # an empty reference
    cands[2] = refs[2][0]  # a candidate equal to a reference
    cands[3] = "zebra quokka zebra"  # words in no reference
    refs[4] = refs[5]  # two candidates share a reference set
    return cands, refs


def _pycoco(cands, refs, n=4):
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    mean, scores = Cider(n=n).compute_score(gts, res)
    return float(mean), np.asarray(scores)


def test_equals_pycocoevalcap_per_candidate_and_mean():
    cands, refs = _batch(0)
    mean, expect = _pycoco(cands, refs)
    got = CiderD(tokenize=str.split).score(cands, refs)
    assert np.abs(got - expect).max() < 1e-9
    assert abs(got.mean() - mean) < 1e-9
    assert expect.max() > 1.0  # the example is not trivially all zeros


def test_equals_pycocoevalcap_across_cached_calls():
    scorer = CiderD(tokenize=str.split)
    for seed in (1, 2, 1):  # new sets, more new sets, then cached sets again
        cands, refs = _batch(seed, n=25)
        got_mean, got = scorer.compute_score(
            {i: r for i, r in enumerate(refs)}, {i: [c] for i, c in enumerate(cands)}
        )
        mean, expect = _pycoco(cands, refs)
        assert np.abs(got - expect).max() < 1e-9
        assert abs(got_mean - mean) < 1e-9


def test_raw_text_with_simple_tokenize_equals_pycocoevalcap_on_tokenised_text():
    refs = [["A man, in a RED shirt!", "The man's shirt is red."], ["Two dogs; one ball."]]
    cands = ["a man in a red shirt", "two dogs playing with a ball..."]
    tok = lambda s: " ".join(simple_tokenize(s))  # noqa: E731
    _, expect = _pycoco([tok(c) for c in cands], [[tok(r) for r in rs] for rs in refs])
    got = CiderD().score(cands, refs)  # simple_tokenize is the default
    assert np.abs(got - expect).max() < 1e-9


class _CorpusDfScorer(CiderScorer):
    """pycocoevalcap's scorer with document frequencies taken from a fixed corpus."""

    def __init__(self, corpus, **kw):
        super().__init__(**kw)
        self._corpus = corpus

    def compute_doc_freq(self):
        self.document_frequency = defaultdict(float)
        for refs in self._corpus:
            for ngram in {g for ref in cook_refs(refs) for g in ref}:
                self.document_frequency[ngram] += 1


def test_corpus_df_equals_pycocoevalcap_with_patched_document_frequency():
    rng = random.Random(7)
    corpus = [[_sentence(rng, 2) for _ in range(rng.randint(1, 5))] for _ in range(12)]
    # pycocoevalcap sets log(D) from the number of scored candidates: score len(corpus)
    cands = [_sentence(rng) for _ in range(len(corpus))]
    refs = [corpus[i] for i in range(len(corpus))]
    refs[3] = ["zebra on the street", "a red quokka"]  # n-grams outside the corpus
    pc = _CorpusDfScorer(corpus)
    for c, r in zip(cands, refs):
        pc += (c, r)
    _, expect = pc.compute_score()
    scorer = CiderD(corpus, tokenize=str.split)
    ids = [i if i != 3 else refs[3] for i in range(len(corpus))]  # ids and a literal set
    got = scorer.score(cands, ids)
    assert np.abs(got - np.asarray(expect)).max() < 1e-9
    assert np.abs(scorer.score(cands, refs) - got).max() < 1e-12  # same refs given as text
    assert scorer.ref_len == pytest.approx(math.log(len(corpus)))


def test_corpus_df_hand_worked():
    # D = 2 documents: idf(a) = log2 - log2 = 0; idf(b) = idf(c) = idf(a b) = log 2
    scorer = CiderD([["a b"], ["a c"]])
    got = scorer.score(["a b", "b a", "a b d d"], [0, 0, 0])
    # "a b" vs "a b": unigram and bigram cosines 1, no 3- or 4-grams: 10 * (1+1+0+0)/4
    assert got[0] == pytest.approx(5.0, abs=1e-12)
    # "b a": unigrams match (cos 1), bigram "b a" absent from the reference (0)
    assert got[1] == pytest.approx(2.5, abs=1e-12)
    # "a b d d": unigram vec (0, l, 2l) vs (0, l): cos 1/sqrt(5); bigrams ab, bd, dd (l each)
    # vs ab: 1/sqrt(3); lengths (bigram counts) 3 vs 1: penalty exp(-4 / 72)
    expect = 10 * (1 / math.sqrt(5) + 1 / math.sqrt(3)) / 4 * math.exp(-4 / 72)
    assert got[2] == pytest.approx(expect, abs=1e-12)


def test_clipping_caps_repeated_ngrams():
    scorer = CiderD([["a b"], ["a c"], ["d e"]])
    once, many = scorer.score(["b", "b b b b b"], [["b"], ["b"]])
    assert once == pytest.approx(10 * 1 / 4)  # unigram cosine 1, lengths 0 and 0
    # clipping: min(5 w, w) * w / (5 w * w) = 1/5, and 4 bigram-length difference
    assert many == pytest.approx(10 * (1 / 5) / 4 * math.exp(-16 / 72))


def test_ngram_counts_match_counter_and_split_batches():
    rng = random.Random(11)
    texts = [_sentence(rng, 0, 7) for _ in range(2500)]  # big enough to be split in halves
    index = NgramIndex(4, str.split)
    sent, ids, order, tf, lengths = index.count(texts, intern=True)
    assert len(set(zip(sent.tolist(), ids.tolist()))) == len(ids)  # distinct per text
    words = {v: k for k, v in index.words.items()}
    for j in rng.sample(range(len(texts)), 150):
        toks = texts[j].split()
        expect = Counter(
            tuple(toks[p : p + k]) for k in range(1, 5) for p in range(len(toks) - k + 1)
        )
        mine = sent == j
        assert sorted(tf[mine].tolist()) == sorted(expect.values())
        assert sorted((order[mine] + 1).tolist()) == sorted(len(g) for g in expect)
        unigrams = {words[i]: c for i, c, o in zip(ids[mine], tf[mine], order[mine]) if o == 0}
        assert unigrams == {g[0]: c for g, c in expect.items() if len(g) == 1}
        assert lengths[j] == max(len(toks) - 1, 0)
        # the same text alone, not interning: the same ids and counts
        s1, i1, _, t1, _ = index.count([texts[j]], intern=False)
        assert sorted(zip(i1.tolist(), t1.tolist())) == sorted(
            zip(ids[mine].tolist(), tf[mine].tolist())
        )


def test_errors_are_clear():
    scorer = CiderD()
    with pytest.raises(ValueError, match="2 candidates for 1"):
        scorer.score(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no reference"):
        scorer.score(["a"], [[]])
    with pytest.raises(IndexError, match="refs_corpus"):
        scorer.score(["a"], [0])
    with pytest.raises(ValueError, match="without references"):
        CiderD([["a"], []])
    with pytest.raises(ValueError, match="n must be"):
        CiderD(n=0)
    assert CiderD().score([], []).shape == (0,)


def test_batched_simple_tokenize_equals_per_text():
    from scalar.rewards.ngrams import tokens

    texts = ["A man, in RED!", "", "ΟΔΟΣ Σ σ.", "tab\there\nnew-line", "x\x00y", "Straße İ"]
    for batch in (texts[:4] + texts[5:], texts, [*texts[:2], 3.5]):  # \x00 / non-str: per text
        toks, sep = tokens(batch, simple_tokenize)
        expect = []
        for t in batch:
            expect += [*simple_tokenize(t), sep]
        assert toks == expect
    assert tokens(texts[:4], simple_tokenize)[1] == "\x00"
    assert tokens(texts, simple_tokenize)[1] is None


def test_reference_sets_without_ngrams():
    cands, refs = ["a b", "a"], [[""], ["", "a"]]
    _, expect = _pycoco(cands, refs)
    assert np.abs(CiderD(tokenize=str.split).score(cands, refs) - expect).max() < 1e-9
    scorer = CiderD([["a b"], ["c"]], tokenize=str.split)
    assert scorer.score(["a b"], [[""]]).tolist() == [0.0]  # only the empty set cached so far


def test_interning_after_lookups_keeps_ids_exact():
    # candidates search a sorted copy of the n-gram table; n-grams interned after a search
    # must be merged into it, whatever the order of interning and searching
    rng = random.Random(5)
    batches = [[_sentence(rng, 1, 8) for _ in range(30)] for _ in range(3)]
    index = NgramIndex(4, str.split)
    for texts in batches:
        before = index.count(texts, intern=False)  # some n-grams unknown so far
        assert (before[1] == -1).any()
        interned = index.count(texts, intern=True)
        after = index.count(texts, intern=False)
        for x, y in zip(interned, after):
            np.testing.assert_array_equal(x, y)
    sent, ids, _, _, _ = index.count(batches[0] + batches[2], intern=False)
    assert (ids >= 0).all() and len(set(zip(sent.tolist(), ids.tolist()))) == len(ids)


def test_a_word_spelled_like_the_batch_separator():
    # "\x00" separates texts when simple_tokenize runs on a joined batch; a reference can
    # also make it a word of its own, which must score as an ordinary word
    refs = [["a \x00 b", "a b c"], ["b \x00", "c a b"]]
    tok = lambda s: " ".join(simple_tokenize(s))  # noqa: E731
    scorer = CiderD()
    for cands in (["a \x00 b", "b a"], ["a b c", "c b"]):  # the second: no "\x00" at all
        _, expect = _pycoco([tok(c) for c in cands], [[tok(r) for r in rs] for rs in refs])
        assert np.abs(scorer.score(cands, refs) - expect).max() < 1e-9
    assert "\x00" in scorer._index.words


def test_corpus_ids_mixed_with_literal_sets_and_bad_ids():
    corpus = [["a b c", "a b"], ["c d", "d c b"], ["e f"]]
    scorer = CiderD(corpus, tokenize=str.split)
    cands = ["a b", "c d b", "e f f"]
    expect = scorer.score(cands, [corpus[0], corpus[1], corpus[2]])  # all as text
    for refs in ([0, 1, 2], [np.int64(0), 1, 2], [0, corpus[1], 2], [0, 1, np.int32(2)]):
        assert np.abs(scorer.score(cands, refs) - expect).max() < 1e-12
    with pytest.raises(IndexError, match="refs_corpus"):
        scorer.score(["a"], [-1])  # no wrap-around
    with pytest.raises(IndexError, match="refs_corpus"):
        scorer.score(["a", "b"], [0, 3])


def test_batches_without_candidate_ngrams():
    for scorer in (CiderD(), CiderD([["a b"], ["c"]])):
        assert scorer.score([""], [["a b"]]).tolist() == [0.0]
        assert scorer.score(["", " ,"], [["a"], "b"]).tolist() == [0.0, 0.0]
