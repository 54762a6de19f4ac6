"""The vectorisable special functions against scipy."""

import numpy as np
import pytest
from numba import njit
from scipy.special import psi

from distlda.kernels.special import (
    digamma,
    digamma_array,
    dirichlet_expectation,
    exp_digamma_minus,
    exp_digamma32,
    exp_digamma_minus_t,
    exp_digamma_normalised_rows,
    exp_digamma_times_rows,
    fast_exp,
    fast_exp32,
)


def _elementwise(fn, with_c=False):
    """A compiled loop ``out[i] = fn(x[i])`` (or ``fn(x[i], c)``), with the kernels' fast-math."""
    if with_c:
        def loop(x, c, out):
            for i in range(x.size):
                out[i] = fn(x[i], c)
    else:
        def loop(x, out):
            for i in range(x.size):
                out[i] = fn(x[i])
    return njit(fastmath=True, error_model="numpy")(loop)


_map_digamma = _elementwise(digamma)
_map_exp_digamma = _elementwise(exp_digamma_minus, with_c=True)
_map_exp = _elementwise(fast_exp)
_map_exp32 = _elementwise(fast_exp32)
_map_exp_digamma_t = _elementwise(exp_digamma_minus_t, with_c=True)


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


# ---------------------------------------------------------------------------------------------- wide ranges
# Tolerances are in units of the format's machine epsilon (EPS64, EPS32) times a condition factor:
# exp(u) computed from an argument u that is itself rounded can be no better than |u|·eps relative
# (d exp(u) / exp(u) = du), so every exp-based bound is k·eps·(1 + |u|). k is a few times what this
# machine measures, to leave room for another CPU's vector width and fused multiply-add.

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)


def test_digamma_over_the_whole_float64_range():
    # 1e-300 to 1e300: psi runs from -1e300 to 690. Near its root (x = 1.4616...) psi is ~0, so the error is
    # measured against max(1, |psi|); measured here: 17 eps, bound 32 eps.
    x = np.logspace(-300, 300, 60001)
    out = np.empty_like(x)
    _map_digamma(x, out)
    ref = psi(x)
    assert np.all(np.abs(out - ref) <= 32 * EPS64 * np.maximum(1.0, np.abs(ref)))


@pytest.mark.parametrize("c", [-3.0, 0.0, 2.5, 50.0])
def test_exp_digamma_minus_over_the_whole_float64_range(c):
    # exp(psi(x) - c) for x in 1e-300..1e300: an exp-based bound (see above), measured k = 55, bound k = 128;
    # where the true value underflows exp (argument below -709) the kernel gives exactly 0.
    x = np.logspace(-300, 300, 60001)
    out = np.empty_like(x)
    _map_exp_digamma(x, c, out)
    arg = psi(x) - c
    inside = (arg > -707.0) & (arg < 707.0)
    ref = np.exp(arg[inside])
    assert np.all(np.abs(out[inside] - ref) <= 128 * EPS64 * (1.0 + np.abs(arg[inside])) * ref)
    assert np.all(out[arg < -709.0] == 0.0)


def test_fast_exp32_over_the_float32_range():
    # Degree-6 polynomial on |r| <= ln2/2: truncation r^7/7! ~ 1 eps32, plus a few roundings; measured 3.7 eps32
    # relative to the float64 exp of the same float32 input, bound 8 eps32.
    x = np.linspace(-87.0, 88.0, 400001).astype(np.float32)
    out = np.empty_like(x)
    _map_exp32(x, out)
    ref = np.exp(x.astype(np.float64))
    assert out.dtype == np.float32
    assert np.all(np.abs(out - ref) <= 8 * EPS32 * ref)
    # below -87 it gives 0 (as documented); above 88 it stays at exp(88), finite
    edges = np.array([-87.5, -100.0, -1e30, 88.5, 1e30], np.float32)
    out = np.empty_like(edges)
    _map_exp32(edges, out)
    assert np.all(out[:3] == 0.0)
    cap = np.empty(1, np.float32)
    _map_exp32(np.array([88.0], np.float32), cap)
    assert np.all(out[3:] == cap[0]) and abs(cap[0] - np.exp(88.0)) <= 8 * EPS32 * np.exp(88.0)


def _within_exp_bound(out, ref, u, k):
    """Elementwise: ``out`` is within k·eps32·(1 + |u|) of ``ref`` relative, u being the exp's argument."""
    return np.abs(out - ref) <= k * EPS32 * (1.0 + np.abs(u)) * ref


def _exp_digamma32_case(c, x):
    """The float32 kernel's exp(psi(x) - c), the float64 reference, and its exp argument psi(x) - c."""
    x = np.asarray(x, np.float32)
    out = np.empty_like(x)
    _map_exp_digamma_t(x, np.float32(c), out)
    arg = psi(x.astype(np.float64)) - np.float64(np.float32(c))
    return out, np.exp(arg), arg


@pytest.mark.parametrize("c", [-3.0, 0.0, 2.5, 20.0])
def test_exp_digamma_minus_t_float32_over_a_wide_range(c):
    # The E-step's float32 inner update. x from 1e-2 (E[log theta] about -100) to 1e5, c as the E-step gives it.
    # The kernel computes (x+6)·exp(u) with u = psi(x) - c - log(x+6): an exp-based bound on u, k = 16
    # (measured 5.1). Its float32 exp flushes to 0 below e^-87, so values under (x+6)·e^-86 (~1e-37, nothing
    # next to the other topics' weights) may be 0; none may be anything else.
    x = np.concatenate([np.logspace(-2, 5, 200001), np.random.default_rng(3).uniform(0.0, 50.0, 50000)])
    out, ref, arg = _exp_digamma32_case(c, x)
    assert out.dtype == np.float32
    x = x.astype(np.float32).astype(np.float64)
    tiny = ref < (x + 6.0) * np.exp(-86.0)
    good = _within_exp_bound(out, ref, arg - np.log(x + 6.0), 16)
    assert np.all(good[~tiny])
    assert np.all(good[tiny] | (out[tiny] == 0.0))
    assert tiny.sum() < 0.1 * tiny.size  # the range is mostly where the bound applies


@pytest.mark.xfail(strict=True, reason="float32 exp_digamma_minus_t caps x at 1e5 in its shift sum: relative "
                                       "error 6e-5 above it, where its docstring promises about 1e-6")
def test_exp_digamma_minus_t_float32_above_1e5():
    # gamma above 1e5 occurs for documents of over 1e5 words: the same bound as below 1e5 should hold.
    x = np.logspace(5, 7, 20001)
    out, ref, arg = _exp_digamma32_case(0.0, x)
    assert np.all(_within_exp_bound(out, ref, arg - np.log(x + 6.0), 16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_digamma_minus_t_float64_is_exp_digamma_minus(dtype):
    # the float64 branch is exp_digamma_minus itself, bit for bit; float32 input gets the float32 branch
    x = np.logspace(-3, 5, 2001).astype(dtype)
    out = np.empty_like(x)
    _map_exp_digamma_t(x, 1.5, out)
    assert out.dtype == dtype
    if dtype == np.float64:
        same = np.empty_like(x)
        _map_exp_digamma(x, 1.5, same)
        np.testing.assert_array_equal(out, same)


def test_digamma_array_is_scipy_in_the_input_type():
    # float32: scipy evaluates in float64 and rounds once, so the result is psi correctly rounded (0 ulps here;
    # bound 1 ulp of the float32 result); float64 is scipy exactly; integers give float64
    x32 = np.logspace(-6, 30, 100001).astype(np.float32)
    got = digamma_array(x32)
    ref = psi(x32.astype(np.float64))
    assert got.dtype == np.float32
    assert np.all(np.abs(got - ref) <= np.spacing(np.abs(ref).astype(np.float32)))
    x64 = np.logspace(-300, 300, 10001)
    np.testing.assert_array_equal(digamma_array(x64), psi(x64))
    assert digamma_array(np.arange(1, 6)).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dirichlet_expectation_over_wide_ranges(dtype):
    # Rows with parameters from 1e-6 to 1e6 (psi from -1e6 to 14). The result psi(a) - psi(sum a) is formed in
    # the input type: each psi rounded (eps·|psi|) and the row sum rounded (n·eps relative, which moves psi(sum)
    # by about n·eps since psi'(s)·s ~ 1). Bound: 4·eps·(|psi(a)| + |psi(sum)| + n), measured below 1.
    eps = np.finfo(dtype).eps
    gen = np.random.default_rng(5)
    a = np.exp(gen.uniform(np.log(1e-6), np.log(1e6), (300, 50))).astype(dtype)
    a[0] = 1e-6  # an all-tiny row and an all-huge row
    a[1] = 1e6
    got = dirichlet_expectation(a)
    assert got.dtype == dtype
    a64 = a.astype(np.float64)
    psi_a, psi_sum = psi(a64), psi(a64.sum(axis=1))[:, None]
    bound = 4 * eps * (np.abs(psi_a) + np.abs(psi_sum) + a.shape[1])
    assert np.all(np.abs(got - (psi_a - psi_sum)) <= bound)
    np.testing.assert_array_equal(dirichlet_expectation(a[7]), got[7])  # a vector is one row


def test_exp_digamma32_matches_scipy_without_a_logarithm():
    t = np.logspace(-3, 9, 4001)
    got = np.array([exp_digamma32(v) for v in t])
    np.testing.assert_allclose(got, np.exp(psi(t)), rtol=1e-7)


@njit
def _normalised_rows(x, out, total):
    exp_digamma_normalised_rows(x, out, total)


@njit
def _times_rows(x, out, scale):
    exp_digamma_times_rows(x, out, scale)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-11)])
@pytest.mark.parametrize("n", [1, 16, 17, 64, 65, 100, 1000])
def test_normalised_and_scaled_rows_match_scipy(dtype, rtol, n):
    # the E-step's exp(ψ(γ) − ψ(Σγ)) and the scaled rows it is built on, at every length around the vector widths
    x = np.exp(np.random.default_rng(n).uniform(np.log(0.5), np.log(1e5), n)).astype(dtype)
    out_buf = np.full(n + 80, -3.0, dtype)
    out = out_buf[:n]
    for total in (0.8, 1.0, 37.0, 4e4):
        _normalised_rows(x, out, total)
        np.testing.assert_allclose(out, np.exp(psi(x.astype(np.float64)) - psi(total)), rtol=rtol)
    _times_rows(x, out, 0.25)
    np.testing.assert_allclose(out, 0.25 * np.exp(psi(x.astype(np.float64))), rtol=rtol)
    assert np.all(out_buf[n:] == -3.0)
