"""The vectorisable special functions against scipy."""

import numpy as np
import pytest
from numba import njit
from scipy.special import psi

from distlda.kernels.special import digamma, dirichlet_expectation, exp_digamma_minus, fast_exp


@njit(fastmath=True, error_model="numpy")
def _map_digamma(x, out):
    for i in range(x.size):
        out[i] = digamma(x[i])


@njit(fastmath=True, error_model="numpy")
def _map_exp_digamma(x, c, out):
    for i in range(x.size):
        out[i] = exp_digamma_minus(x[i], c)


@njit(fastmath=True, error_model="numpy")
def _map_exp(x, out):
    for i in range(x.size):
        out[i] = fast_exp(x[i])


X = np.concatenate([np.logspace(-8, 8, 20001), np.random.default_rng(0).uniform(0, 30, 20000)])


def test_digamma_matches_scipy():
    out = np.empty_like(X)
    _map_digamma(X, out)
    ref = psi(X)
    assert np.max(np.abs(out - ref) / np.maximum(1.0, np.abs(ref))) < 1e-12


def test_exp_digamma_minus_matches_scipy():
    out = np.empty_like(X)
    for c in (-3.0, 0.0, 2.5):
        _map_exp_digamma(X, c, out)
        ref = np.exp(psi(X) - c)
        # the argument psi(x) is itself ~1/x for tiny x, so relative accuracy is that of psi in float64
        tol = 1e-13 * np.maximum(1.0, np.abs(psi(X))) + 1e-14
        assert np.all(np.abs(out - ref) <= tol * ref + 1e-300)


def test_fast_exp_matches_numpy_and_clamps():
    x = np.random.default_rng(1).uniform(-700, 700, 50000)
    out = np.empty_like(x)
    _map_exp(x, out)
    assert np.max(np.abs(out - np.exp(x)) / np.exp(x)) < 1e-13
    extreme = np.array([-1e6, -709.5, 0.0, 800.0])
    out = np.empty_like(extreme)
    _map_exp(extreme, out)
    assert out[0] == 0.0 and out[1] == 0.0 and out[2] == 1.0 and np.isfinite(out[3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dirichlet_expectation_rows(dtype):
    a = np.random.default_rng(2).gamma(1.0, 1.0, (4, 7)).astype(dtype) + 0.01
    got = dirichlet_expectation(a)
    assert got.dtype == dtype
    ref = psi(a.astype(np.float64)) - psi(a.astype(np.float64).sum(1))[:, None]
    np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(dirichlet_expectation(a[0]), ref[0], rtol=1e-5 if dtype == np.float32 else 1e-12)
