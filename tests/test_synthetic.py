"""Synthetic LDA corpora: shapes, reproducibility, the generative distribution, corpus behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from distlda.corpora.csr import CsrChunk, concat_chunks, iter_chunks
from distlda.datasets import SyntheticCorpus, make_lda_corpus


@pytest.fixture(scope="module")
def corpus():
    return make_lda_corpus(2000, 300, 5, doc_length=30, random_state=11, return_theta=True)


def doc_totals(c: SyntheticCorpus) -> np.ndarray:
    return np.add.reduceat(c.chunk.counts, c.chunk.indptr[:-1]) if c.num_nnz else np.zeros(c.num_docs)


def test_shapes_and_dtypes(corpus):
    c = corpus
    assert isinstance(c, SyntheticCorpus)
    assert c.topics.shape == (5, 300) and c.topics.dtype == np.float64
    np.testing.assert_allclose(c.topics.sum(axis=1), 1.0)
    assert c.theta.shape == (2000, 5) and c.theta.dtype == np.float32
    np.testing.assert_allclose(c.theta.sum(axis=1), 1.0, rtol=1e-5)
    ch = c.chunk
    assert ch.start == 0 and len(ch.indptr) == 2001
    assert ch.indptr.dtype == np.int64 and ch.ids.dtype == np.int32 and ch.counts.dtype == np.float64
    assert len(c) == c.num_docs == 2000 and c.num_terms == 300 and c.num_nnz == ch.nnz
    assert ch.ids.min() >= 0 and ch.ids.max() < 300
    assert np.all(ch.counts >= 1) and np.all(ch.counts == np.round(ch.counts))
    # ids strictly increase within every document (sorted, each term once)
    step = np.diff(ch.ids.astype(np.int64))
    inside = np.ones(len(step), dtype=bool)
    inside[ch.indptr[1:-1] - 1] = False  # steps that cross into the next document
    assert np.all(step[inside] > 0)
    assert c.id2word[42] == "t00042" and len(c.id2word) == 300
    assert c.alpha.shape == (5,)


def test_without_theta_keeps_none():
    c = make_lda_corpus(10, 20, 3, random_state=0)
    assert c.theta is None


def test_reproducible_from_random_state():
    a = make_lda_corpus(500, 100, 4, random_state=3)
    b = make_lda_corpus(500, 100, 4, random_state=np.random.default_rng(3))
    other = make_lda_corpus(500, 100, 4, random_state=4)
    np.testing.assert_array_equal(a.topics, b.topics)
    for name in ("indptr", "ids", "counts"):
        np.testing.assert_array_equal(getattr(a.chunk, name), getattr(b.chunk, name))
    assert not np.array_equal(a.topics, other.topics)
    make_lda_corpus(5, 10, 2, random_state=None)  # fresh entropy works too


def test_document_lengths_are_poisson_and_at_least_one():
    c = make_lda_corpus(20000, 50, 3, doc_length=40, random_state=5)
    totals = doc_totals(c)
    assert np.all(totals >= 1)
    # Poisson(40): mean 40 (sd of the mean 0.045), variance 40 (sd of the sample variance ~0.4)
    assert abs(totals.mean() - 40) < 0.3
    assert abs(totals.var() - 40) < 2.5
    short = doc_totals(make_lda_corpus(20000, 50, 3, doc_length=0.7, random_state=6))
    assert short.min() == 1
    # lengths 0 and 1 both become 1: P = e^-0.7 * (1 + 0.7) = 0.844
    assert abs((short == 1).mean() - np.exp(-0.7) * 1.7) < 0.015


def test_theta_mean_follows_alpha():
    alpha = np.array([0.5, 0.1, 0.1, 0.3])
    c = make_lda_corpus(20000, 30, 4, alpha=alpha, random_state=7, return_theta=True)
    np.testing.assert_array_equal(c.alpha, alpha)
    np.testing.assert_allclose(c.theta.mean(axis=0), alpha / alpha.sum(), atol=0.01)


def _grouped_chi_square(c: SyntheticCorpus, theta: np.ndarray) -> tuple[float, int]:
    """Pearson statistic of observed word counts against N_d * theta_d @ beta, docs grouped by main topic."""
    ch = c.chunk
    counts = sp.csr_matrix((ch.counts, ch.ids, ch.indptr), shape=(c.num_docs, c.num_terms))
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    group = np.argmax(theta, axis=1)
    stat, df = 0.0, 0
    for g in np.unique(group):
        rows = group == g
        observed = np.asarray(counts[rows].sum(axis=0)).ravel()
        expected = (lengths[rows] @ theta[rows].astype(np.float64)) @ c.topics
        big = expected >= 5  # pool the rare words into one bin
        obs = np.append(observed[big], observed[~big].sum())
        exp = np.append(expected[big], expected[~big].sum())
        keep = exp > 0
        stat += float((((obs - exp) ** 2)[keep] / exp[keep]).sum())
        df += int(keep.sum()) - 1
    return stat, df


def test_word_counts_follow_theta_beta():
    """Given theta and the lengths, words are multinomial with probabilities theta_d @ beta."""
    c = make_lda_corpus(20000, 200, 4, doc_length=40, alpha=0.2, eta=0.05, random_state=8, return_theta=True)
    stat, df = _grouped_chi_square(c, c.theta)
    limit = df + 6 * np.sqrt(2 * df)  # chi-square(df) is below this with overwhelming probability
    assert stat < limit, (stat, df)
    # and the check has power: the same words judged against other documents' proportions fail it
    shuffled = c.theta[np.random.default_rng(0).permutation(c.num_docs)]
    assert _grouped_chi_square(c, shuffled)[0] > 5 * limit


def test_given_topics_are_used():
    topics = np.zeros((3, 12))
    topics[0, :4] = 0.25
    topics[1, 4:8] = [0.1, 0.2, 0.3, 0.4]
    topics[2, 8:] = 0.25
    c = make_lda_corpus(300, 12, 3, alpha=1e-3, topics=topics, random_state=9, return_theta=True)
    np.testing.assert_array_equal(c.topics, topics)
    # with a tiny alpha each document is (nearly) one topic: its words stay in that topic's block
    main = np.argmax(c.theta, axis=1)
    block = c.chunk.ids // 4
    owner = np.repeat(main, np.diff(c.chunk.indptr))
    assert np.mean(block == owner) > 0.99


def test_iter_and_iter_chunks(corpus):
    docs = list(corpus)
    assert len(docs) == len(corpus)
    assert docs[5] == corpus.chunk.doc(5)
    assert all(isinstance(t, int) and isinstance(n, int) for t, n in docs[0])
    chunks = list(iter_chunks(corpus, 300, start=7))  # the csr fast path uses corpus.iter_chunks
    assert [c.start for c in chunks] == list(range(7, 2007, 300))
    assert [c.n_docs for c in chunks] == [300] * 6 + [200]
    assert all(isinstance(c, CsrChunk) for c in chunks)
    joined = concat_chunks(chunks)
    np.testing.assert_array_equal(joined.indptr, corpus.chunk.indptr)
    np.testing.assert_array_equal(joined.ids, corpus.chunk.ids)
    np.testing.assert_array_equal(joined.counts, corpus.chunk.counts)
    with pytest.raises(ValueError, match="chunksize"):
        list(corpus.iter_chunks(0))


def test_split(corpus):
    train, held = corpus.split(0.1)
    assert (len(train), len(held)) == (1800, 200)
    assert train.chunk.start == 0 and held.chunk.start == 0
    assert train.num_nnz + held.num_nnz == corpus.num_nnz
    assert list(held) == list(corpus)[1800:]
    np.testing.assert_array_equal(held.theta, corpus.theta[1800:])
    assert held.topics is corpus.topics and held.id2word is corpus.id2word
    assert [c.start for c in held.iter_chunks(150)] == [0, 150]
    for bad in (0, 1, -0.5, 1.5):
        with pytest.raises(ValueError, match="holdout_fraction"):
            corpus.split(bad)
    with pytest.raises(ValueError, match="both must be at least 1"):
        make_lda_corpus(3, 10, 2, random_state=0).split(0.1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_docs=0), ValueError, "num_docs"),
        (dict(num_terms=2.5), TypeError, "num_terms"),
        (dict(num_topics=-1), ValueError, "num_topics"),
        (dict(doc_length=0), ValueError, "doc_length"),
        (dict(alpha=[0.1, 0.2, 0.3]), ValueError, "alpha"),
        (dict(alpha=-1.0), ValueError, "alpha"),
        (dict(eta=0.0), ValueError, "eta"),
        (dict(topics=np.ones((3, 10)) / 10), ValueError, "topics must have shape"),
        (dict(topics=np.ones((2, 10))), ValueError, "sum to 1"),
        (dict(random_state="seed"), TypeError, "random_state"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = dict(num_docs=10, num_terms=10, num_topics=2, random_state=0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        make_lda_corpus(**args)
