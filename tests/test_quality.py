"""Initial topics from anchor words (distlda.core.init): numpy references, and better topics than gensim's start."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from distlda.core import init as anchors_init
from distlda.datasets import make_lda_corpus
from distlda.evaluation import topic_recovery
from distlda.models import LdaModel


def _reference_cooccurrence(docs: list[list[tuple[int, float]]], words: np.ndarray) -> np.ndarray:
    """Q by its definition, one document at a time over dense count vectors of the covered words."""
    q = np.zeros((len(words), len(words)))
    for doc in docs:
        x = np.zeros(len(words))
        for term, count in doc:
            hits = np.flatnonzero(words == term)
            if hits.size:
                x[hits[0]] += count
        n = x.sum()
        if n > 1:
            q += (np.outer(x, x) - np.diag(x)) / (n * (n - 1))
    return q / q.sum()


def test_cooccurrence_matches_its_definition() -> None:
    rng = np.random.default_rng(3)
    docs = []
    for _ in range(57):  # not a multiple of the read chunk, with repeated ids and single-word documents
        ids = rng.integers(0, 40, size=rng.integers(1, 9))
        docs.append([(int(i), float(rng.integers(1, 4))) for i in ids])
    co = anchors_init.word_cooccurrence(docs, 40, max_words=25)
    assert len(co.words) == 25
    freq = np.zeros(40)
    for doc in docs:
        for term, count in doc:
            freq[term] += count
    assert co.tokens == freq.sum()
    assert np.all(np.diff(freq[co.words]) <= 0)  # most frequent first
    np.testing.assert_allclose(co.q, _reference_cooccurrence(docs, co.words), rtol=1e-12, atol=1e-15)


def _separable(k: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Topics over m words where word j < k appears in topic j only (an anchor), and the exact Q of LDA-like
    documents: Q = A R Aᵀ with A the word-by-topic matrix and R a topic-topic matrix."""
    topics = rng.dirichlet(np.full(m, 0.3), size=k)
    topics[:, :k] = 0.0
    topics[np.arange(k), np.arange(k)] = 0.05
    topics /= topics.sum(axis=1, keepdims=True)
    r = np.full((k, k), 0.2 / k) + np.diag(np.full(k, 1.0))
    a = topics.T
    q = a @ r @ a.T
    return topics, q / q.sum(), np.arange(k)


def test_anchors_and_topics_are_found_in_an_exactly_separable_matrix() -> None:
    k, m = 6, 60
    topics, q, true_anchors = _separable(k, m, np.random.default_rng(0))
    word_prob = q.sum(axis=1)
    rows = q / word_prob[:, None]
    found = anchors_init.find_anchors(rows, k)
    assert found is not None and sorted(found.tolist()) == true_anchors.tolist()
    recovered = anchors_init.recover_topics(rows, word_prob, found, iterations=2000)
    match = topic_recovery(topics, recovered + 1e-12)
    assert match.mean_hellinger < 0.05
    np.testing.assert_allclose(recovered.sum(axis=1), 1.0)


@pytest.mark.parametrize("k", [1, 7, 40])
def test_anchors_by_the_gram_matrix_are_the_gram_schmidt_ones(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    # rows of p(w2 | w1) as a real co-occurrence gives them: low rank (60 topics) plus noise, with some zero rows
    rng = np.random.default_rng(k)
    topics = rng.dirichlet(np.full(250, 0.05), 60)
    q = topics.T @ rng.dirichlet(np.full(60, 0.3), 60) @ topics + rng.random((250, 250)) * 1e-6
    q[rng.random(250) < 0.05] = 0.0
    rows = np.divide(q, q.sum(axis=1, keepdims=True), out=np.zeros_like(q), where=q.sum(axis=1, keepdims=True) > 0)
    found = {}
    for way, gram_from in (("gram", 0.0), ("gram-schmidt", np.inf)):
        monkeypatch.setattr(anchors_init, "GRAM_ANCHORS_FROM", gram_from)
        found[way] = anchors_init.find_anchors(rows, k)
    assert found["gram"] is not None and found["gram"].tolist() == found["gram-schmidt"].tolist()
    assert len(set(found["gram"].tolist())) == k and np.all(rows[found["gram"]].sum(axis=1) > 0)


@pytest.mark.parametrize("gram_from", [0.0, np.inf])  # always by the Gram matrix, never
def test_too_few_independent_rows_gives_none(monkeypatch: pytest.MonkeyPatch, gram_from: float) -> None:
    monkeypatch.setattr(anchors_init, "GRAM_ANCHORS_FROM", gram_from)
    rows = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert anchors_init.find_anchors(rows, 2) is None
    assert anchors_init.find_anchors(np.eye(3), 3) is not None


@pytest.mark.parametrize("seed", [0, 1])
def test_anchor_start_recovers_topics_far_better_than_gensims(seed: int) -> None:
    # 30 true topics, documents mixing several of them: from gensim's random start online VB merges
    # topics; from anchor words it finds them. Measured (seeds 0, 1, 2): 0.25, 0.29, 0.25 against 0.42, 0.41,
    # 0.43; the spread between seeds is a few hundredths
    corpus = make_lda_corpus(3000, 1500, 30, doc_length=40, random_state=100 + seed)
    scores = {}
    for init in ("anchors", "gensim"):
        model = LdaModel(corpus, num_topics=30, id2word=corpus.id2word, passes=3, chunksize=500,
                         random_state=seed, eval_every=0, threads=1, init=init)
        scores[init] = topic_recovery(corpus.topics, model.get_topics()).mean_hellinger
    assert scores["anchors"] < scores["gensim"] - 0.08, scores


def test_gensim_init_is_the_random_start_and_anchors_keep_its_noise() -> None:
    corpus = make_lda_corpus(300, 200, 5, random_state=7)
    gensim_start = LdaModel(id2word=corpus.id2word, num_topics=5, random_state=3, init="gensim")
    no_corpus = LdaModel(id2word=corpus.id2word, num_topics=5, random_state=3)  # anchors need the corpus
    np.testing.assert_array_equal(gensim_start.state.sstats, no_corpus.state.sstats)
    found = anchors_init.anchor_topics(corpus, 5, corpus.num_terms)
    assert found is not None
    expected = gensim_start.state.sstats.copy()
    words, topics, tokens = found
    expected[:, words] += (topics * (tokens / 5)).astype(expected.dtype)
    started = LdaModel(id2word=corpus.id2word, num_topics=5, random_state=3, eval_every=0)
    assert anchors_init.add_anchor_topics(started.state.sstats, corpus)
    np.testing.assert_array_equal(started.state.sstats, expected)


def test_a_corpus_too_small_for_anchors_falls_back_to_the_random_start(caplog: pytest.LogCaptureFixture) -> None:
    docs = [[(0, 2.0), (1, 1.0)], [(1, 3.0), (2, 1.0)]]
    with caplog.at_level(logging.INFO, logger="distlda.core.init"):
        model = LdaModel(docs, num_topics=5, random_state=1, eval_every=0, passes=1)
    assert "too few co-occurring words" in caplog.text
    reference = LdaModel(docs, num_topics=5, random_state=1, eval_every=0, passes=1, init="gensim")
    np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)


def test_init_is_validated_saved_and_bad_corpora_still_refused(tmp_path) -> None:
    docs = [[(0, 1.0), (1, 2.0)], [(2, 1.0), (3, 1.0)]]
    with pytest.raises(ValueError, match="init must be one of 'anchors', 'gensim'"):
        LdaModel(docs, num_topics=2, init="kmeans")
    with pytest.raises(ValueError, match="init"):
        LdaModel(docs, num_topics=2, init=None)
    with pytest.raises(ValueError, match="document 1"):
        LdaModel([[(0, 1.0)], [(9, 1.0)]], num_topics=2, id2word={i: str(i) for i in range(4)})
    model = LdaModel(docs, num_topics=2, eval_every=0, init="gensim")
    model.save(str(tmp_path / "m"))
    assert LdaModel.load(str(tmp_path / "m")).init == "gensim"


def test_a_long_corpus_is_sampled_and_its_word_count_estimated(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = make_lda_corpus(3000, 200, 5, random_state=8)
    full = anchors_init.word_cooccurrence(corpus, corpus.num_terms, 200)
    monkeypatch.setattr(anchors_init, "SAMPLE_DOCUMENTS", 1000)
    monkeypatch.setattr(anchors_init, "_READ_CHUNK", 500)  # 6 chunks, every third read: 1,000 documents
    sampled = anchors_init.word_cooccurrence(corpus, corpus.num_terms, 200)
    assert abs(sampled.tokens / full.tokens - 1) < 0.05  # the corpus's word count, estimated
    assert len(set(sampled.words[:40]) & set(full.words[:40])) >= 32  # a third of the corpus: the same top words
    assert sampled.q.shape != full.q.shape or not np.array_equal(sampled.q, full.q)  # but from part of it


def test_the_anchor_start_comes_with_the_first_corpus_whether_given_at_construction_or_to_update(
        monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = make_lda_corpus(400, 150, 4, random_state=2)
    params = dict(id2word=corpus.id2word, num_topics=4, random_state=5, eval_every=0, passes=2, dtype=np.float64)
    at_once = LdaModel(corpus, **params)
    later = LdaModel(**params)
    later.update(corpus)
    np.testing.assert_array_equal(at_once.state.sstats, later.state.sstats)
    # only the first corpus gives a start: a second update() continues training
    monkeypatch.setattr(anchors_init, "anchor_topics", lambda *args: pytest.fail("a second start"))
    later.update(corpus)
