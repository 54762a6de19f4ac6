"""Prior initialisation and the Newton step for Dirichlet priors."""

import numpy as np
import pytest
from reference import newton_dirichlet_full

from distlda.core.priors import dirichlet_newton_step, init_alpha, init_eta


def test_alpha_forms():
    a, learn = init_alpha("symmetric", 4, np.float32)
    assert a.dtype == np.float32 and np.allclose(a, 0.25) and not learn
    a, learn = init_alpha("auto", 4, np.float64)
    assert np.allclose(a, 0.25) and learn
    a, _ = init_alpha("asymmetric", 4, np.float64)
    raw = 1.0 / (np.arange(4) + 2.0)
    np.testing.assert_allclose(a, raw / raw.sum())
    assert a[0] > a[-1] and a.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(init_alpha(0.3, 3, np.float64)[0], [0.3] * 3)
    np.testing.assert_allclose(init_alpha([0.1, 0.2, 0.3], 3, np.float64)[0], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("bad, match", [("weird", "alpha must be one of"), (-1.0, "positive"),
                                        ([0.1, 0.2], r"shape \(2,\)"), (np.nan, "finite"), (None, "not None"),
                                        ([0.1, -0.1, 0.2], "positive")])
def test_alpha_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        init_alpha(bad, 3, np.float64)


def test_eta_forms():
    e, learn = init_eta(None, 4, 10, np.float32)
    assert e.shape == (10,) and np.allclose(e, 0.25) and not learn
    e, learn = init_eta("auto", 4, 10, np.float64)
    assert learn
    assert init_eta(np.full((4, 10), 0.5), 4, 10, np.float64)[0].shape == (4, 10)
    assert init_eta(np.full(10, 0.5), 4, 10, np.float64)[0].shape == (10,)


@pytest.mark.parametrize("bad, match", [("asymmetric", "not defined"), ("x", "eta must be"), (0.0, "positive"),
                                        (np.ones(9), r"shape \(9,\)"), (np.ones((3, 10)), r"shape \(3, 10\)")])
def test_eta_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        init_eta(bad, 4, 10, np.float64)


def test_newton_step_equals_full_newton_solve(rng):
    true = rng.uniform(0.1, 2.0, 6)
    prior = true * rng.uniform(0.9, 1.1, 6)
    logphat = np.log(rng.dirichlet(true, size=200)).mean(axis=0)
    fast = dirichlet_newton_step(prior, 200.0, logphat, 1.0)
    np.testing.assert_allclose(fast, newton_dirichlet_full(prior, 200.0, logphat), rtol=1e-10)
    half = dirichlet_newton_step(prior, 200.0, logphat, 0.5)
    np.testing.assert_allclose(half, prior + 0.5 * (fast - prior), rtol=1e-10)


def test_newton_iterations_recover_the_true_dirichlet():
    rng = np.random.default_rng(4)
    true = np.array([0.2, 0.5, 1.5, 3.0])
    sample = rng.dirichlet(true, size=20000)
    logphat = np.log(sample).mean(axis=0)
    prior = true * np.array([1.3, 0.8, 1.2, 0.9])
    for _ in range(50):
        prior = dirichlet_newton_step(prior, len(sample), logphat, 1.0)
    np.testing.assert_allclose(prior, true, rtol=0.05)


def test_newton_step_refuses_to_go_non_positive():
    prior = np.array([1e-3, 1.0])
    out = dirichlet_newton_step(prior, 10.0, np.array([-50.0, 0.0]), 1.0)
    assert np.all(out > 0)
