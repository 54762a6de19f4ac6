"""The bound kernels against the plain numpy formula."""

import numpy as np
import pytest
from conftest import random_docs
from reference import bound as ref_bound

from distlda.models import LdaModel


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bound_matches_reference(rng, dtype):
    V = 30
    docs = random_docs(rng, 40, V, empty_every=9)
    model = LdaModel(docs, num_topics=4, id2word={i: str(i) for i in range(V)}, passes=2, random_state=3,
                     alpha="asymmetric", eval_every=0, dtype=dtype)
    gamma, _ = model.inference(docs)
    got = model.bound(docs, gamma=gamma, subsample_ratio=2.5)
    expected = ref_bound(docs, gamma.astype(np.float64), model.alpha.astype(np.float64),
                         model.state.get_lambda().astype(np.float64), model.eta.astype(np.float64), 2.5)
    assert got == pytest.approx(expected, rel=1e-9 if dtype == np.float64 else 1e-5)


def test_bound_exact_where_topic_probabilities_underflow(rng):
    """A word with tiny λ in every topic: exp(E[log β]) underflows in float32, the bound must not."""
    V = 20
    docs = random_docs(rng, 10, V)
    model = LdaModel(None, num_topics=3, id2word={i: str(i) for i in range(V)}, random_state=0, dtype=np.float32,
                     eta=1e-4)
    model.state.sstats[:, 5] = 0.0
    model.sync_state()
    assert (model.expElogbeta[:, 5] < 1e-30).all()
    docs[0] = [(5, 2.0)]
    gamma, _ = model.inference(docs)
    got = model.bound(docs, gamma=gamma)
    expected = ref_bound(docs, gamma.astype(np.float64), model.alpha.astype(np.float64),
                         model.state.get_lambda().astype(np.float64), model.eta.astype(np.float64))
    assert np.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-5)


def test_log_perplexity_is_per_word_bound_of_a_sample(rng):
    V = 25
    docs = random_docs(rng, 30, V)
    model = LdaModel(docs, num_topics=3, id2word={i: str(i) for i in range(V)}, random_state=1, eval_every=0,
                     dtype=np.float64)
    words = sum(c for d in docs for _, c in d)
    sample = docs[:10]
    sample_words = sum(c for d in sample for _, c in d)
    ratio = 30 / 10
    expected = model.bound(sample, subsample_ratio=ratio) / (ratio * sample_words)
    assert model.log_perplexity(sample, total_docs=30) == pytest.approx(expected, rel=1e-12)
    assert model.per_word_bound(docs) == pytest.approx(model.bound(docs) / words, rel=1e-12)
