"""Agreement with gensim 4.4's LdaModel (a test-only reference, never a run-time dependency)."""

import numpy as np
import pytest

from distlda.models import LdaModel

gensim_models = pytest.importorskip("gensim.models")


class _Replay:
    """Stands in for gensim's RandomState, handing out distlda's γ initialisations.

    With it, gensim starts every document where distlda does, so the two
    implementations can be compared step for step, not only statistically.
    """

    def __init__(self, inits):
        self.inits = iter(inits)

    def gamma(self, shape, scale, size):
        return next(self.inits)


def _training_inits(seed, num_docs, chunksize, passes, num_topics):
    from distlda.kernels.rng import fill_gamma_init, training_keys

    for pass_ in range(passes):
        for start in range(0, num_docs, chunksize):
            n = min(chunksize, num_docs - start)
            out = np.empty((n, num_topics))
            fill_gamma_init(training_keys(seed, pass_, start, n), out)
            yield out


def _copy_topics(ours, theirs):
    """Give our model exactly gensim's λ, eta and alpha."""
    ours.state.sstats = theirs.state.sstats.astype(ours.dtype)
    ours.eta = np.asarray(theirs.eta, dtype=ours.dtype)
    ours.alpha = np.asarray(theirs.alpha, dtype=ours.dtype)
    ours.sync_state()


@pytest.fixture(scope="module")
def synthetic():
    from distlda.datasets import make_lda_corpus

    data = make_lda_corpus(1500, 150, 5, doc_length=40, alpha=0.2, eta=0.05, random_state=11)
    train, held = data.split(0.2)
    return data, list(train), list(held)


def test_priors_match_gensim():
    vocab = {i: str(i) for i in range(40)}
    for alpha in ("symmetric", "asymmetric", 0.3):
        g = gensim_models.LdaModel(id2word=vocab, num_topics=7, alpha=alpha, dtype=np.float64)
        ours = LdaModel(id2word=vocab, num_topics=7, alpha=alpha, dtype=np.float64)
        np.testing.assert_allclose(ours.alpha, g.alpha, rtol=1e-12)
        np.testing.assert_allclose(ours.eta, g.eta, rtol=1e-12)


def test_inference_and_bound_match_gensim_given_the_same_topics(synthetic):
    from distlda.corpora.csr import bow_to_chunk
    from distlda.kernels.rng import content_keys, fill_gamma_init

    data, train, held = synthetic
    g = gensim_models.LdaModel(train, id2word=data.id2word, num_topics=5, passes=2, random_state=0,
                               dtype=np.float64, eval_every=0)
    ours = LdaModel(id2word=data.id2word, num_topics=5, dtype=np.float64, random_state=5)
    _copy_topics(ours, g)
    docs = held[:100]
    chunk = bow_to_chunk(docs)
    init = np.empty((len(docs), 5))
    fill_gamma_init(content_keys(ours._seed, chunk.indptr, chunk.ids, chunk.counts), init)
    g.random_state = _Replay([init])
    g_gamma, g_sstats = g.inference(docs, collect_sstats=True)
    gamma, sstats = ours.inference(docs, collect_sstats=True)
    np.testing.assert_allclose(gamma, g_gamma, rtol=1e-10)
    np.testing.assert_allclose(sstats, g_sstats, rtol=1e-10, atol=1e-13)


def test_bound_and_perplexity_match_gensim(synthetic):
    # gensim's bound() infers each document on its own (and fails when given γ), so replay the same
    # per-document initialisations to it and give its γ to ours. float32: gensim's bound refuses float64.
    data, train, held = synthetic
    g = gensim_models.LdaModel(train, id2word=data.id2word, num_topics=5, random_state=0, eval_every=0)
    ours = LdaModel(id2word=data.id2word, num_topics=5, random_state=5)
    _copy_topics(ours, g)
    docs = held[:100]
    inits = [np.random.default_rng(d).gamma(100.0, 0.01, (1, 5)) for d in range(len(docs))]
    g.random_state = _Replay(inits)
    g_gamma = np.vstack([g.inference([doc])[0] for doc in docs])
    g.random_state = _Replay(inits)
    expected = g.bound(docs, subsample_ratio=3.0)
    assert ours.bound(docs, gamma=g_gamma, subsample_ratio=3.0) == pytest.approx(expected, rel=1e-5)
    # gensim's log_perplexity returns the same per-word bound (it only logs 2**-bound as "perplexity")
    words = sum(c for doc in docs for _, c in doc)
    assert ours.log_perplexity(docs, total_docs=300) == pytest.approx(
        ours.bound(docs, subsample_ratio=3.0) / (3.0 * words), rel=1e-12)
    assert ours.log_perplexity(docs, total_docs=300) == pytest.approx(expected / (3.0 * words), rel=1e-3)


@pytest.mark.parametrize("update_every, passes", [(1, 2), (2, 1), (0, 2)])
def test_training_equals_gensim_step_for_step(synthetic, update_every, passes):
    """From the same initial λ and γ draws, training gives gensim's model to float rounding."""
    data, train, held = synthetic
    common = dict(id2word=data.id2word, num_topics=5, chunksize=200, passes=passes, update_every=update_every,
                  dtype=np.float64, eval_every=0, alpha="auto" if update_every == 1 else "symmetric")
    ours = LdaModel(None, random_state=3, init="gensim", **common)  # gensim's random start, not anchor words
    g = gensim_models.LdaModel(None, random_state=3, **common)
    g.state.sstats[...] = ours.state.sstats
    g.sync_state()
    g.random_state = _Replay(_training_inits(ours._seed, len(train), 200, passes, 5))
    g.update(train)
    ours.update(train)
    np.testing.assert_allclose(ours.state.sstats, g.state.sstats, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.alpha, g.alpha, rtol=1e-9)
    assert ours.num_updates == g.num_updates


def test_update_alpha_matches_gensim(synthetic):
    data, train, held = synthetic
    g = gensim_models.LdaModel(id2word=data.id2word, num_topics=5, alpha="auto", dtype=np.float64)
    ours = LdaModel(id2word=data.id2word, num_topics=5, alpha="auto", dtype=np.float64)
    gamma = np.random.default_rng(0).gamma(2.0, 1.0, (300, 5))
    np.testing.assert_allclose(ours.update_alpha(gamma, 0.7), g.update_alpha(gamma, 0.7), rtol=1e-10)


def test_formatting_matches_gensim(synthetic):
    data, train, held = synthetic
    g = gensim_models.LdaModel(train[:300], id2word=data.id2word, num_topics=5, random_state=0, eval_every=0)
    ours = LdaModel(id2word=data.id2word, num_topics=5)
    _copy_topics(ours, g)
    for t in range(5):
        assert ours.print_topic(t, topn=6) == g.print_topic(t, topn=6)
        assert [w for w, _ in ours.show_topic(t, 6)] == [w for w, _ in g.show_topic(t, 6)]
    assert ours.show_topics(num_topics=-1, formatted=True) == g.show_topics(num_topics=-1, formatted=True)


@pytest.mark.parametrize("dtype, passes", [(np.float64, 1), (np.float32, 3)])
def test_trained_models_reach_the_same_heldout_bound(synthetic, dtype, passes):
    """Same data and parameters, each with its own random draws: held-out bound within 1% of gensim's, or better."""
    data, train, held = synthetic
    common = dict(id2word=data.id2word, num_topics=5, chunksize=200, passes=passes, random_state=0, dtype=dtype,
                  eval_every=0)
    g = gensim_models.LdaModel(train, **common)
    ours = LdaModel(train, **common)
    judge = LdaModel(id2word=data.id2word, num_topics=5, dtype=np.float64)
    _copy_topics(judge, g)
    theirs_bound = judge.per_word_bound(held)
    _copy_topics(judge, ours)
    ours_bound = judge.per_word_bound(held)
    assert ours_bound >= theirs_bound - 0.01 * abs(theirs_bound)


@pytest.mark.parametrize("chunksize", [9, 2000])
def test_common_corpus_snippet_runs_like_gensims(chunksize):
    """README's snippet, ported from gensim by changing the imports, gives gensim's results from the same start.

    chunksize=2000 is the snippet as written (gensim's default); 9 is the corpus' length.
    """
    import gensim.corpora
    import gensim.test.utils

    from distlda.corpora import Dictionary
    from distlda.corpora.csr import bow_to_chunk
    from distlda.kernels.rng import content_keys, fill_gamma_init
    from distlda.test.utils import common_texts

    assert common_texts == gensim.test.utils.common_texts
    dictionary, g_dictionary = Dictionary(common_texts), gensim.corpora.Dictionary(gensim.test.utils.common_texts)
    assert dictionary.token2id == g_dictionary.token2id
    corpus = [dictionary.doc2bow(text) for text in common_texts]
    assert corpus == [g_dictionary.doc2bow(text) for text in common_texts] == gensim.test.utils.common_corpus

    ours = LdaModel(corpus, id2word=dictionary, num_topics=2, passes=10, random_state=0, chunksize=chunksize,
                    init="gensim")  # gensim's random start, not topics from the corpus
    # gensim from our initial topics, replaying our γ draws; no evaluation, whose draws the replay does not hold
    start = LdaModel(id2word=dictionary, num_topics=2, random_state=0)
    g = gensim_models.LdaModel(id2word=g_dictionary, num_topics=2, passes=10, random_state=0, chunksize=chunksize,
                               eval_every=0)
    g.state.sstats[...] = start.state.sstats
    g.sync_state()
    g.random_state = _Replay(_training_inits(ours._seed, len(corpus), chunksize, 10, 2))
    g.update(corpus)
    assert ours.state.sstats.dtype == g.state.sstats.dtype == np.float32
    np.testing.assert_allclose(ours.get_topics(), g.get_topics(), rtol=1e-4)
    assert ours.num_updates == g.num_updates == len(corpus)
    for k in range(2):
        assert [w for w, _ in ours.show_topic(k, topn=6)] == [w for w, _ in g.show_topic(k, topn=6)]
    # a document's topics: gensim draws its starting γ where we derive ours from the document's content
    for bow in corpus:
        init = np.empty((1, 2))
        chunk = bow_to_chunk([bow])
        fill_gamma_init(content_keys(ours._seed, chunk.indptr, chunk.ids, chunk.counts), init)
        g.random_state = _Replay([init])
        mine, theirs = ours[bow], g[bow]
        assert [t for t, _ in mine] == [t for t, _ in theirs]
        np.testing.assert_allclose([p for _, p in mine], [p for _, p in theirs], rtol=1e-4, atol=1e-6)
