"""The gensim-compatible steps of LdaModel and LdaState, each on its own, against numpy and gensim 4.4.

Where distlda deliberately differs from gensim (README, "Same math as gensim, without its known faults"): a
learned eta ('auto') is the state's, so the topics use it, where gensim's ``update_eta`` leaves the state's eta
(and so the topics) as they were.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import random_docs
from scipy.special import polygamma, psi

from distlda.models import LdaModel
from distlda.models.callbacks import Metric
from distlda.models.ldastate import LdaState

gensim_lda = pytest.importorskip("gensim.models.ldamodel")

K, V = 4, 30
VOCAB = {i: f"w{i}" for i in range(V)}


class _Replay:
    """Hands gensim the γ initialisations distlda uses, in place of its RandomState's draws."""

    def __init__(self, inits):
        self.inits = iter(inits)

    def gamma(self, shape, scale, size):
        return next(self.inits)


def _pair(**kwargs):
    """distlda and gensim models (float64) holding the same topics."""
    ours = LdaModel(id2word=VOCAB, num_topics=K, dtype=np.float64, random_state=2, **kwargs)
    theirs = gensim_lda.LdaModel(id2word=VOCAB, num_topics=K, dtype=np.float64, random_state=2, **kwargs)
    theirs.state.sstats[...] = ours.state.sstats
    theirs.sync_state()
    np.testing.assert_allclose(ours.expElogbeta, theirs.expElogbeta, rtol=1e-12)
    return ours, theirs


def _query_inits(model, docs):
    """The starting γ distlda gives ``docs`` when asked for their topics (derived from their content)."""
    from distlda.corpora.csr import bow_to_chunk
    from distlda.kernels.rng import content_keys, fill_gamma_init

    chunk = bow_to_chunk(docs)
    init = np.empty((len(docs), model.num_topics))
    fill_gamma_init(content_keys(model._seed, chunk.indptr, chunk.ids, chunk.counts), init)
    return init


def _states(rng, own_docs, other_docs):
    """Two float64 states of random statistics standing for ``own_docs`` and ``other_docs`` documents."""
    states = []
    for numdocs in (own_docs, other_docs):
        state = LdaState(np.full(V, 0.1), (K, V), dtype=np.float64)
        state.sstats[...] = rng.gamma(1.0, 1.0, (K, V))
        state.numdocs = numdocs
        states.append(state)
    return states


def _in_gensim(*states):
    """gensim LdaStates holding the same statistics and document counts as ``states``."""
    copies = []
    for state in states:
        copy = gensim_lda.LdaState(state.eta, state.sstats.shape, dtype=state.sstats.dtype)
        copy.sstats[...], copy.numdocs = state.sstats, state.numdocs
        copies.append(copy)
    return copies


def _newton_reference(prior, n, logphat, rho):
    """One Newton step of a Dirichlet prior, by solving with the full Hessian (no Sherman–Morrison)."""
    grad = n * (psi(prior.sum()) - psi(prior) + logphat)
    hessian = n * polygamma(1, prior.sum()) * np.ones((prior.size, prior.size)) - n * np.diag(polygamma(1, prior))
    return prior - rho * np.linalg.solve(hessian, grad)


# ------------------------------------------------------------------------------------------------- E-step

def test_do_estep_adds_the_chunks_statistics_like_gensim(rng):
    docs = random_docs(rng, 40, V, empty_every=9)
    ours, theirs = _pair()
    theirs.random_state = _Replay([_query_inits(ours, docs)])
    before = ours.state.sstats.copy()
    gamma = ours.do_estep(docs)
    expected = theirs.do_estep(docs)
    np.testing.assert_allclose(gamma, expected, rtol=1e-10)
    np.testing.assert_allclose(ours.state.sstats, theirs.state.sstats, rtol=1e-10)
    assert ours.state.numdocs == theirs.state.numdocs == len(docs)
    # what was added is inference()'s statistics
    _, sstats = ours.inference(docs, collect_sstats=True)
    np.testing.assert_allclose(ours.state.sstats - before, sstats, rtol=1e-9, atol=1e-12)


def test_do_estep_into_another_state_leaves_the_models_alone(rng):
    docs = random_docs(rng, 25, V)
    ours, _ = _pair()
    before = ours.state.sstats.copy()
    other = LdaState(ours.eta, (K, V), dtype=np.float64)
    gamma = ours.do_estep(iter(docs), state=other)  # a generator: documents are counted from γ
    np.testing.assert_array_equal(ours.state.sstats, before)
    assert ours.state.numdocs == 0 and other.numdocs == len(docs) == gamma.shape[0]
    np.testing.assert_array_equal(other.sstats, ours.inference(docs, collect_sstats=True)[1])


# ------------------------------------------------------------------------------------------------- M-step

@pytest.mark.parametrize("extra_pass", [False, True])
def test_do_mstep_blends_like_gensim(rng, extra_pass):
    ours, theirs = _pair()
    ours.state.numdocs = theirs.state.numdocs = 200
    ours_other = _states(rng, 0, 50)[1]
    theirs_other, = _in_gensim(ours_other)
    ours.do_mstep(0.3, ours_other, extra_pass=extra_pass)
    theirs.do_mstep(0.3, theirs_other, extra_pass=extra_pass)
    np.testing.assert_allclose(ours.state.sstats, theirs.state.sstats, rtol=1e-12)
    np.testing.assert_allclose(ours.expElogbeta, theirs.expElogbeta, rtol=1e-10)
    assert ours.state.numdocs == theirs.state.numdocs == 200
    assert ours.num_updates == theirs.num_updates == (0 if extra_pass else 50)


def test_do_mstep_with_eta_auto_learns_gensims_eta_and_the_topics_use_it(rng):
    ours, theirs = _pair(eta="auto")
    ours.state.numdocs = theirs.state.numdocs = 100
    ours_other = _states(rng, 0, 30)[1]
    theirs_other, = _in_gensim(ours_other)
    old_eta = ours.eta.copy()
    ours.do_mstep(0.5, ours_other)
    theirs.do_mstep(0.5, theirs_other)
    np.testing.assert_allclose(ours.state.sstats, theirs.state.sstats, rtol=1e-12)
    np.testing.assert_allclose(ours.eta, theirs.eta, rtol=1e-10)  # the same Newton step from the same λ
    assert not np.allclose(ours.eta, old_eta)
    # the difference: our topics use the new eta; gensim's state (and topics) keep the old one
    assert ours.state.eta is ours.eta
    np.testing.assert_array_equal(theirs.state.eta, old_eta)
    lam = ours.state.sstats + ours.eta
    np.testing.assert_allclose(ours.expElogbeta, np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None]), rtol=1e-10)


# ------------------------------------------------------------------------------------------------- priors

@pytest.mark.parametrize("name, prior", [
    ("alpha", "symmetric"), ("alpha", "asymmetric"), ("alpha", "auto"), ("alpha", 0.3), ("alpha", [0.1, 0.2, 0.3, 0.4]),
    ("eta", None), ("eta", "symmetric"), ("eta", "auto"), ("eta", 0.05), ("eta", np.linspace(0.01, 0.3, V)),
    ("eta", np.full((K, V), 0.2)),
])
def test_init_dir_prior_matches_gensim(name, prior):
    ours, theirs = _pair()
    value, learned = ours.init_dir_prior(prior, name)
    expected, expected_learned = theirs.init_dir_prior(prior, name)
    assert value.dtype == np.float64 and value.shape == np.shape(expected)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert learned == expected_learned


def test_init_dir_prior_refuses_other_names():
    ours, _ = _pair()
    with pytest.raises(ValueError, match="'alpha' or 'eta'"):
        ours.init_dir_prior("symmetric", "beta")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_alpha_is_one_newton_step(rng, dtype):
    model = LdaModel(id2word=VOCAB, num_topics=K, alpha="auto", dtype=dtype)
    start = model.alpha.astype(np.float64)
    gamma = rng.gamma(2.0, 1.0, (300, K))
    logphat = np.mean(psi(gamma) - psi(gamma.sum(axis=1))[:, None], axis=0)
    got = model.update_alpha(gamma, 0.7)
    assert got is model.alpha and got.dtype == dtype
    np.testing.assert_allclose(got, _newton_reference(start, 300, logphat, 0.7),
                               rtol=1e-6 if dtype == np.float32 else 1e-10)


def test_update_alpha_refuses_a_step_to_a_non_positive_prior(rng, caplog):
    model = LdaModel(id2word=VOCAB, num_topics=K, alpha="auto", dtype=np.float64)
    start = model.alpha.copy()
    gamma = np.tile([50.0, 0.01, 0.01, 0.01], (20, 1))  # topic 0 everywhere: a full step drives the rest below 0
    assert np.any(_newton_reference(start, 20, np.mean(psi(gamma) - psi(gamma.sum(1))[:, None], 0), 1.0) <= 0)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(model.update_alpha(gamma, 1.0), start)
    assert "non-positive" in caplog.text
    np.testing.assert_array_equal(model.update_alpha(np.empty((0, K)), 0.5), start)  # no documents, no step


def test_update_eta_matches_gensim_and_is_the_states(rng):
    ours, theirs = _pair(eta="auto")
    lam = rng.gamma(1.0, 1.0, (K, V)) + 0.1
    start = ours.eta.copy()
    got = ours.update_eta(lam, 0.6)
    assert got is ours.eta is ours.state.eta
    np.testing.assert_allclose(got, theirs.update_eta(lam, 0.6), rtol=1e-10)
    logphat = np.mean(psi(lam) - psi(lam.sum(axis=1))[:, None], axis=0)
    np.testing.assert_allclose(got, _newton_reference(start, K, logphat, 0.6), rtol=1e-10)


def test_update_eta_needs_one_value_per_word():
    model = LdaModel(id2word=VOCAB, num_topics=K, eta=np.full((K, V), 0.1))
    with pytest.raises(ValueError, match="one value per word"):
        model.update_eta(np.ones((K, V)), 0.5)


# --------------------------------------------------------------------------------------------------- LdaState

@pytest.mark.parametrize("own_docs, other_docs, targetsize", [
    (200, 50, None), (200, 50, 1000), (0, 50, None), (0, 50, 50), (200, 0, None), (30, 30, 30),
])
def test_blend_matches_gensim_and_the_formula(rng, own_docs, other_docs, targetsize):
    mine, other = _states(rng, own_docs, other_docs)
    theirs, theirs_other = _in_gensim(mine, other)
    target = own_docs if targetsize is None else targetsize
    own_scale = target / own_docs if own_docs else 1.0
    other_scale = target / other_docs if other_docs else 1.0
    expected = 0.75 * own_scale * mine.sstats + 0.25 * other_scale * other.sstats
    mine.blend(0.25, other, targetsize)
    theirs.blend(0.25, theirs_other, targetsize)
    np.testing.assert_allclose(mine.sstats, expected, rtol=1e-14)
    np.testing.assert_allclose(mine.sstats, theirs.sstats, rtol=1e-14)
    assert mine.numdocs == theirs.numdocs == target


@pytest.mark.parametrize("targetsize", [None, 500])
def test_blend2_adds_without_weights(rng, targetsize):
    mine, other = _states(rng, 200, 50)
    expected = mine.sstats + other.sstats
    theirs, theirs_other = _in_gensim(mine, other)
    mine.blend2(0.9, other, targetsize)  # rhot is not used, as in gensim
    theirs.blend2(0.9, theirs_other, targetsize)
    np.testing.assert_array_equal(mine.sstats, expected)
    np.testing.assert_array_equal(mine.sstats, theirs.sstats)
    assert mine.numdocs == theirs.numdocs == (200 if targetsize is None else targetsize)


def test_merge_sums_statistics_and_documents(rng):
    mine, other = _states(rng, 120, 80)
    expected, other_before = mine.sstats + other.sstats, other.sstats.copy()
    theirs, theirs_other = _in_gensim(mine, other)
    mine.merge(other)
    theirs.merge(theirs_other)
    np.testing.assert_array_equal(mine.sstats, expected)
    np.testing.assert_array_equal(mine.sstats, theirs.sstats)
    assert mine.numdocs == theirs.numdocs == 200
    np.testing.assert_array_equal(other.sstats, other_before)  # the other is untouched
    assert other.numdocs == 80
    with pytest.raises(ValueError, match="cannot merge"):
        mine.merge(LdaState(np.full(V + 1, 0.1), (K, V + 1), dtype=np.float64))


# ------------------------------------------------------------------------------------------- sync_training

def _arrays(model):
    return model.state.sstats.copy(), model.eta.copy(), model.alpha.copy(), model.expElogbeta.copy()


def _assert_same_model(a, b):
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert a.num_updates == b.num_updates and a.state.numdocs == b.state.numdocs


def test_sync_training_outside_training_changes_nothing(rng):
    docs = random_docs(rng, 60, V)
    for model in (LdaModel(id2word=VOCAB, num_topics=K, random_state=0),
                  LdaModel(docs, id2word=VOCAB, num_topics=K, random_state=0, alpha="auto", eta="auto")):
        before = _arrays(model)
        assert model.sync_training() is None
        for x, y in zip(before, _arrays(model)):
            np.testing.assert_array_equal(x, y)


class _Syncing(Metric):
    """A metric that calls ``sync_training`` from inside training, as a user's callback may."""

    def __init__(self) -> None:
        super().__init__(title="Syncing")
        self.topics: list[np.ndarray] = []

    def get_value(self, **kwargs):
        model = kwargs["model"]
        model.sync_training()
        self.topics.append(model.get_topics().copy())
        return float(len(self.topics))


def test_sync_training_from_a_callback_during_local_training_is_harmless(rng):
    docs = random_docs(rng, 150, V)
    common = dict(id2word=VOCAB, num_topics=K, chunksize=40, passes=3, random_state=4, alpha="auto", eta="auto")
    syncing = _Syncing()
    with_sync = LdaModel(docs, callbacks=[syncing], **common)
    without = LdaModel(docs, **common)
    assert with_sync.metrics["Syncing"] == [1.0, 2.0, 3.0]
    _assert_same_model(with_sync, without)
    np.testing.assert_array_equal(syncing.topics[-1], without.get_topics())  # it saw each pass's model
