"""LdaModel end to end: training, determinism, priors, queries."""

import numpy as np
import pytest
from conftest import random_docs

from distlda.models import LdaModel
from distlda.models.callbacks import ConvergenceMetric, DiffMetric, PerplexityMetric


def _vocab(n):
    return {i: f"w{i}" for i in range(n)}


def test_common_corpus_trains_and_gives_finite_topics(toy_corpus):
    corpus, dictionary = toy_corpus
    model = LdaModel(corpus, id2word=dictionary, num_topics=2, passes=5, random_state=0)
    topics = model.get_topics()
    assert topics.shape == (2, len(dictionary))
    assert np.all(np.isfinite(topics)) and np.allclose(topics.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(model.expElogbeta))
    assert model.state.numdocs == len(corpus)  # counted once per update() call, as gensim does
    words = {w for _, topic in model.show_topics(formatted=False) for w, _ in topic}
    assert words <= set(dictionary.token2id)


def test_same_seed_same_model_and_thread_count_does_not_matter(rng, monkeypatch, kernel_calls):
    import distlda.core.estep

    # A model takes at most the cores it may use; lift that cap so that 3 threads run on any machine (a 1-core
    # machine interleaves them), and kernel_calls makes sure helper threads really take part.
    monkeypatch.setattr(distlda.core.estep, "max_threads", lambda: 4)
    docs = random_docs(rng, 400, 60, max_len=20)
    models = {}
    for threads in (1, 3):
        models[threads] = LdaModel(None, num_topics=5, id2word=_vocab(60), chunksize=64, passes=2, random_state=7,
                                   threads=threads, alpha="auto")
        kernel_calls.calls.clear()
        models[threads].update(docs)  # what LdaModel(docs, ...) does; the set-up before it runs on every core
        assert models[threads].threads == threads and kernel_calls.thread_counts() == {threads}
        assert (len(kernel_calls.threads_that_ran()) > 1) == (threads > 1)
    a, b = models[1], models[3]
    c = LdaModel(docs, num_topics=5, id2word=_vocab(60), chunksize=64, passes=2, random_state=8, threads=3,
                 alpha="auto")
    np.testing.assert_array_equal(a.state.sstats, b.state.sstats)
    np.testing.assert_array_equal(a.expElogbeta, b.expElogbeta)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    assert not np.array_equal(a.state.sstats, c.state.sstats)


def test_online_updates_count_documents_and_change_the_model(rng):
    docs = random_docs(rng, 200, 40)
    model = LdaModel(docs[:100], num_topics=3, id2word=_vocab(40), chunksize=25, random_state=1)
    assert model.num_updates == 100 and model.state.numdocs == 100
    before = model.get_topics().copy()
    model.update(docs[100:], chunksize=50)
    assert model.num_updates == 200 and model.state.numdocs == 200
    assert not np.allclose(before, model.get_topics())


def test_update_every_groups_chunks_into_one_mstep(rng):
    docs = random_docs(rng, 120, 30)
    one = LdaModel(docs, num_topics=3, id2word=_vocab(30), chunksize=20, update_every=3, random_state=2)
    # 6 chunks, an M-step every 3 -> 2 updates of 60 documents each
    assert one.num_updates == 120
    batch = LdaModel(docs, num_topics=3, id2word=_vocab(30), chunksize=20, update_every=0, passes=3,
                     random_state=2)
    assert batch.num_updates == 120  # batch mode: one M-step per pass, only the first counts


def test_alpha_auto_and_eta_auto_change_the_model(rng):
    docs = random_docs(rng, 300, 50)
    fixed = LdaModel(docs, num_topics=4, id2word=_vocab(50), chunksize=50, random_state=3, passes=2)
    auto = LdaModel(docs, num_topics=4, id2word=_vocab(50), chunksize=50, random_state=3, passes=2,
                    alpha="auto", eta="auto")
    assert not np.allclose(auto.alpha, fixed.alpha)
    assert not np.allclose(auto.eta, fixed.eta)
    # the learned eta is the one the topics use (gensim's eta='auto' never reached the state)
    assert auto.eta is auto.state.eta
    np.testing.assert_allclose(auto.state.get_lambda(), auto.state.sstats + auto.eta)
    lam = auto.state.get_lambda().astype(np.float64)
    from scipy.special import psi
    np.testing.assert_allclose(auto.expElogbeta, np.exp(psi(lam) - psi(lam.sum(1))[:, None]), rtol=1e-4)
    assert not np.allclose(auto.get_topics(), fixed.get_topics())


def test_alpha_auto_on_corpus_from_asymmetric_prior_learns_asymmetry():
    from distlda.datasets import make_lda_corpus

    data = make_lda_corpus(3000, 200, 4, doc_length=40, alpha=np.array([1.0, 0.3, 0.1, 0.05]), eta=0.05,
                           random_state=0)
    model = LdaModel(data, num_topics=4, id2word=data.id2word, chunksize=500, passes=4, alpha="auto",
                     random_state=0)
    assert np.max(model.alpha) / np.min(model.alpha) > 3


def test_document_queries_are_deterministic_and_consistent(rng):
    docs = random_docs(rng, 100, 30)
    model = LdaModel(docs, num_topics=4, id2word=_vocab(30), random_state=4, minimum_probability=0.0)
    first = model.get_document_topics(docs[3])
    assert first == model.get_document_topics(docs[3]) == model[docs[3]]
    assert list(model[docs[:5]])[3] == first  # corpus path gives the same answer
    assert sum(p for _, p in first) == pytest.approx(1.0, abs=1e-5)
    topics, word_topics, phis = model.get_document_topics(docs[3], per_word_topics=True, minimum_phi_value=0.0)
    assert [w for w, _ in word_topics] == [w for w, _ in docs[3]]
    for (w, c), (_, phi) in zip(docs[3], phis):
        assert sum(v for _, v in phi) == pytest.approx(c, rel=1e-4)
    gamma, sstats = model.inference([docs[3]], collect_sstats=True)
    assert sstats.shape == (4, 30) and sstats.sum() == pytest.approx(sum(c for _, c in docs[3]), rel=1e-4)


def test_empty_document_gets_the_prior(rng):
    docs = random_docs(rng, 50, 20)
    model = LdaModel(docs, num_topics=3, id2word=_vocab(20), random_state=5, alpha=[0.1, 0.2, 0.7],
                     minimum_probability=0.0)
    got = dict(model[[]])
    assert got[2] == pytest.approx(0.7, abs=1e-6)


def test_topic_queries(toy_corpus):
    corpus, dictionary = toy_corpus
    model = LdaModel(corpus, id2word=dictionary, num_topics=3, passes=3, random_state=0)
    terms = model.get_topic_terms(1, topn=4)
    assert len(terms) == 4 and terms == sorted(terms, key=lambda t: -t[1])
    assert model.show_topic(1, topn=4) == [(dictionary[i], p) for i, p in terms]
    assert model.print_topic(1, topn=2).count("*") == 2
    assert len(model.show_topics(num_topics=-1)) == 3 and len(model.print_topics(2)) == 2
    word = terms[0][0]
    tt = model.get_term_topics(word, minimum_probability=0.0)
    assert [t for t, _ in tt] == [0, 1, 2]
    assert tt[1][1] == pytest.approx(terms[0][1])
    assert model.get_term_topics(dictionary[word], minimum_probability=0.0) == tt
    with pytest.raises(ValueError, match="topicid"):
        model.show_topic(3)
    ranked = model.top_topics(corpus, coherence="u_mass", topn=5)
    assert len(ranked) == 3 and all(len(t) == 5 for t, _ in ranked)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_diff_against_itself_and_another(rng):
    docs = random_docs(rng, 200, 40)
    a = LdaModel(docs, num_topics=4, id2word=_vocab(40), random_state=1)
    b = LdaModel(docs, num_topics=3, id2word=_vocab(40), random_state=2)
    for distance in ("kullback_leibler", "hellinger", "jaccard", "jensen_shannon"):
        same, ann = a.diff(a, distance=distance, normed=False, num_words=10)
        assert np.allclose(np.diag(same), 0.0, atol=1e-6), distance
        mdiff, ann = a.diff(b, distance=distance, num_words=10)
        assert mdiff.shape == (4, 3) and ann.shape == (4, 3) and mdiff.max() == pytest.approx(1.0)
    diag, _ = a.diff(a, diagonal=True, annotation=False)
    assert diag.shape == (4,)
    with pytest.raises(ValueError, match="distance"):
        a.diff(b, distance="euclid")
    with pytest.raises(ValueError, match="diagonal"):
        a.diff(b, diagonal=True)
    # Hellinger against a closed form
    p, q = a.get_topics()[0], b.get_topics()[1]
    h, _ = a.diff(b, distance="hellinger", normed=False, annotation=False)
    assert h[0, 1] == pytest.approx(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)), rel=1e-6)


def test_callbacks_record_metrics_each_pass(rng):
    docs = random_docs(rng, 150, 30)
    metrics = [PerplexityMetric(corpus=docs[:20], logger="shell"), ConvergenceMetric(), DiffMetric()]
    model = LdaModel(docs, num_topics=3, id2word=_vocab(30), passes=3, random_state=0, callbacks=metrics)
    assert set(model.metrics) == {"Perplexity", "Convergence", "Diff"}
    assert len(model.metrics["Perplexity"]) == 3
    assert all(np.isfinite(v) and v > 1 for v in model.metrics["Perplexity"])
    assert model.metrics["Diff"][0].shape == (3,)
    with pytest.raises(TypeError, match="Metric"):
        LdaModel(docs, num_topics=3, id2word=_vocab(30), callbacks=["perplexity"])


def test_float64_model_is_float64_throughout(rng):
    docs = random_docs(rng, 50, 20)
    model = LdaModel(docs, num_topics=3, id2word=_vocab(20), dtype=np.float64, random_state=0)
    assert model.state.sstats.dtype == model.expElogbeta.dtype == model.alpha.dtype == np.float64
    assert model.inference(docs[:3])[0].dtype == np.float64


def test_vocabulary_from_corpus_when_no_id2word(rng):
    docs = random_docs(rng, 20, 15)
    model = LdaModel(docs, num_topics=2, random_state=0)
    assert model.num_terms == max(i for d in docs for i, _ in d) + 1
    assert model.id2word[3] == "3"


def test_sparse_matrix_and_csr_chunk_corpora_give_the_same_model(rng):
    import scipy.sparse as sp

    from distlda.corpora.csr import bow_to_chunk

    docs = random_docs(rng, 80, 25)
    chunk = bow_to_chunk(docs)
    matrix = sp.csr_matrix((chunk.counts, chunk.ids, chunk.indptr), shape=(80, 25))
    a = LdaModel(docs, num_topics=3, id2word=_vocab(25), chunksize=30, random_state=0)
    b = LdaModel(matrix, num_topics=3, id2word=_vocab(25), chunksize=30, random_state=0)
    c = LdaModel(chunk, num_topics=3, id2word=_vocab(25), chunksize=30, random_state=0)
    np.testing.assert_array_equal(a.state.sstats, b.state.sstats)
    np.testing.assert_array_equal(a.state.sstats, c.state.sstats)


def test_distributed_must_be_a_flag_or_a_dask_client():
    from distlda.models import LdaModel

    with pytest.raises(TypeError, match=r"distributed must be True or False .* or a dask distributed.Client, got "
                                        r"str 'dask'"):
        LdaModel(id2word={0: "a"}, num_topics=2, distributed="dask")
