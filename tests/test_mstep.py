"""M-step kernels and LdaState against numpy."""

import numpy as np
import pytest
from reference import dirichlet_expectation

from distlda.models.ldastate import LdaState, blend_coefficients
from distlda.kernels.mstep import blend_and_expectations, blend_word_stats, topic_expectations, topic_log_sums
from distlda.kernels.parallel import kernel_threads

K, V = 5, 700  # more words than one block, not a multiple of it


@pytest.mark.parametrize("per_topic_eta", [False, True])
def test_topic_expectations_match_numpy(rng, per_topic_eta):
    sstats = rng.gamma(0.5, 2.0, (V, K))
    eta = rng.uniform(0.01, 0.5, (V, K) if per_topic_eta else (V, 1))
    exp_elogbeta = np.empty((V, K))
    topic_expectations(sstats, eta, exp_elogbeta)
    lam = (sstats + eta).T
    np.testing.assert_allclose(exp_elogbeta.T, np.exp(dirichlet_expectation(lam)), rtol=1e-12)
    np.testing.assert_allclose(topic_log_sums(sstats, eta), __import__("scipy").special.psi(lam.sum(1)), rtol=1e-13)


def test_blend_matches_formula(rng):
    sstats = rng.gamma(1.0, 1.0, (V, K))
    raw = rng.gamma(1.0, 1.0, (V, K))
    exp_elogbeta = rng.random((V, K))
    expected = 0.3 * sstats + 0.9 * raw * exp_elogbeta
    blend_word_stats(sstats, raw, exp_elogbeta, 0.3, 0.9)
    np.testing.assert_allclose(sstats, expected, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_topic_eta", [False, True])
def test_blend_and_expectations_in_one_pass_equal_the_two_steps(rng, dtype, per_topic_eta):
    sstats = rng.gamma(0.5, 2.0, (V, K)).astype(dtype)
    raw = (rng.gamma(1.0, 1.0, (V, K)) * (rng.random((V, 1)) < 0.4)).astype(dtype)  # most words untouched
    eta = rng.uniform(0.01, 0.5, (V, K) if per_topic_eta else (V, 1)).astype(dtype)
    exp_elogbeta = np.empty((V, K), dtype)
    topic_expectations(sstats, eta, exp_elogbeta)
    two_steps, two_exp_elogbeta = sstats.copy(), exp_elogbeta.copy()
    blend_word_stats(two_steps, raw, two_exp_elogbeta, 0.7, 1.3)
    topic_expectations(two_steps, eta, two_exp_elogbeta)
    for threads in (1, 2):
        with kernel_threads(threads):
            one_pass, one_exp_elogbeta = sstats.copy(), exp_elogbeta.copy()
            blend_and_expectations(one_pass, raw, one_exp_elogbeta, 0.7, 1.3, eta, one_exp_elogbeta)  # reads the old exp_elogbeta in place
        np.testing.assert_array_equal(one_pass, two_steps)
        np.testing.assert_array_equal(one_exp_elogbeta, two_exp_elogbeta)


def test_expectations_do_not_depend_on_thread_count(rng):
    sstats = rng.gamma(0.5, 2.0, (V, K)).astype(np.float32)
    eta = np.full((V, 1), 0.1, np.float32)
    outs = []
    for threads in (1, 2, 3):
        with kernel_threads(threads):
            out = np.empty((V, K), np.float32)
            topic_expectations(sstats, eta, out)
            outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_blend_coefficients_stretch_both_sides():
    # a model of 100 docs, a batch of 10, target 1000: both are stretched to 1000
    a, b = blend_coefficients(0.25, 100, 10, 1000)
    assert a == pytest.approx(0.75 * 10) and b == pytest.approx(0.25 * 100)
    assert blend_coefficients(1.0, 0, 10, 10) == (0.0, 1.0)


def test_ldastate_blend_merge_reset_and_views(rng):
    eta = np.full(V, 0.1)
    s1 = LdaState(eta, (K, V), dtype=np.float64)
    s1.sstats[...] = rng.random((K, V))
    s1.numdocs = 50
    s2 = LdaState(eta, (K, V), dtype=np.float64)
    s2.sstats = rng.random((K, V))
    s2.numdocs = 5
    before1, before2 = s1.sstats.copy(), s2.sstats.copy()
    s1.blend(0.5, s2, targetsize=100)
    np.testing.assert_allclose(s1.sstats, 0.5 * 2 * before1 + 0.5 * 20 * before2)
    assert s1.numdocs == 100
    np.testing.assert_allclose(s1.get_lambda(), s1.sstats + 0.1)
    np.testing.assert_allclose(s1.get_Elogbeta(), dirichlet_expectation(s1.get_lambda()))
    s1.merge(s2)
    assert s1.numdocs == 105
    assert s1.sstats_wm.shape == (V, K) and np.shares_memory(s1.sstats, s1.sstats_wm)
    s1.reset()
    assert s1.numdocs == 0 and not s1.sstats.any()
    with pytest.raises(ValueError, match="cannot merge"):
        s1.merge(LdaState(np.full(3, 0.1), (K, 3)))


def test_ldastate_save_load_roundtrip(tmp_path, rng):
    s = LdaState(np.full(V, 0.2, np.float32), (K, V))
    s.sstats = rng.random((K, V)).astype(np.float32)
    s.numdocs = 17
    s.save(tmp_path / "state")
    for mmap in (None, "r"):
        t = LdaState.load(tmp_path / "state", mmap=mmap)
        np.testing.assert_array_equal(t.sstats, s.sstats)
        np.testing.assert_array_equal(t.eta, s.eta)
        assert t.numdocs == 17 and t.dtype == np.float32
