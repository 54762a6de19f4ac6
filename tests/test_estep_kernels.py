"""The E-step's vector building blocks against numpy, at every K around the vector width, and the FP mode.

The E-step's inner loops are written in explicit vectors (8 float64 lanes; 8 or 16 float32 lanes, by CPU) with a
masked last vector; these tests cover K below, at and just past multiples of the width, entry blocks of every size
(8, 4, 2, 1 entries), and check that no lane past a row's end is read or written.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
from conftest import random_docs
from numba import njit
from reference import estep as ref_estep

from distlda.core.estep import fit_gamma
from distlda.corpora.csr import bow_to_chunk
from distlda.kernels import entries
from distlda.kernels import estep as kernels
from distlda.kernels.fpmode import flush_subnormals, restore_fp_mode
from distlda.kernels.mstep import topic_expectations
from distlda.kernels.parallel import kernel_threads
from distlda.kernels.rng import fill_gamma_init, training_keys
from distlda.kernels.special import digamma_array, exp_digamma_minus_rows
from distlda.kernels.vectorir import target_vector_bits, vector_lanes

WIDTHS = [1, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 129]
BLOCKS = entries.ADD_BLOCKS


def _block_caller(block: int):
    add = BLOCKS[block]

    @njit
    def call(eth, table, ids, counts, j, eps, acc):
        add(eth, table, ids, counts, j, eps, acc)

    return call


CALLERS = {block: _block_caller(block) for block in BLOCKS}


@njit
def _exp_digamma_rows(x, out, c):
    exp_digamma_minus_rows(x, out, c)


@pytest.mark.parametrize("name,features,bits32", [
    ("znver4", "+avx2,+fma,+avx512f,+avx512bw,+avx512vl", 256),  # AVX-512 run as two halves
    ("sapphirerapids", "+avx2,+fma,+avx512f,+avx512bw,+avx512vl", 512),
    ("skylake-avx512", "+avx2,+avx512f", 512),
    ("haswell", "+avx2,+fma,-avx512f", 256),
    ("znver4", "+avx2,-avx512f", 256),
    ("generic", "", 256),
])
def test_vectors_are_chosen_for_the_target(name, features, bits32):
    assert target_vector_bits(4, name, features) == bits32
    assert target_vector_bits(8, name, features) == 512  # float64: 4 lanes were slower on every K measured


def test_a_row_padded_to_a_cache_line_is_whole_vectors():
    for itemsize in (4, 8):
        lanes = vector_lanes(itemsize)
        assert lanes in (8, 16) and (kernels.ALIGN // itemsize) % lanes == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", WIDTHS)
@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_entry_block_matches_numpy_and_stays_inside_rows(rng, dtype, K, block):
    V = 12
    # every row used is followed by a row of NaN, and eth and acc are views into longer buffers: a lane read past
    # K would turn the result into NaN, a lane written past K would change the sentinel
    table = np.full((V, K), np.nan, dtype)
    table[::2] = rng.random((V // 2, K)) / K
    eth_buf = np.full(K + 16, np.nan, dtype)
    eth_buf[:K] = rng.random(K)
    acc_buf = np.full(K + 16, -7.0, dtype)
    acc_buf[:K] = rng.random(K)
    eth, acc = eth_buf[:K], acc_buf[:K]
    j = 3
    ids = (2 * rng.integers(0, V // 2, j + block + 2)).astype(np.int32)
    counts = rng.integers(1, 5, j + block + 2).astype(dtype)
    eps = float(np.finfo(dtype).eps)
    expected = acc.astype(np.float64)
    for e in range(j, j + block):
        row = table[ids[e]].astype(np.float64)
        expected += counts[e] / (eth.astype(np.float64) @ row + eps) * row
    CALLERS[block](eth, table, ids, counts, j, eps, acc)
    np.testing.assert_allclose(acc, expected, rtol=2e-6 if dtype == np.float32 else 1e-13)
    assert np.all(acc_buf[K:] == -7.0)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 3e-6), (np.float64, 1e-11)])
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 40, 100])
def test_exp_digamma_minus_rows_matches_scipy(rng, dtype, rtol, n):
    x = np.exp(rng.uniform(np.log(0.5), np.log(1e4), n)).astype(dtype)
    out_buf = np.full(n + 16, -3.0, dtype)
    out = out_buf[:n]
    c = 2.5
    _exp_digamma_rows(x, out, c)
    expected = np.exp(digamma_array(x.astype(np.float64)) - c)
    np.testing.assert_allclose(out, expected, rtol=rtol)
    assert np.all(out_buf[n:] == -3.0)


def test_exp_digamma_minus_rows_underflows_to_zero():
    # ψ(1e-3) − 3 ≈ −1003: below exp's range in both types, the result is exactly 0 (not a subnormal, not NaN)
    for dtype in (np.float32, np.float64):
        x = np.full(20, 1e-3, dtype)
        out = np.ones(20, dtype)
        _exp_digamma_rows(x, out, 3.0)
        assert np.all(out == 0.0)


def _model(rng, K, V, dtype=np.float64):
    sstats = rng.gamma(2.0, 1.0, (V, K)).astype(dtype)
    exp_elogbeta = np.empty((V, K), dtype)
    topic_expectations(sstats, np.full((V, 1), 0.05, dtype), exp_elogbeta)
    return exp_elogbeta


@pytest.mark.parametrize("K", [3, 16, 17, 33])
def test_fit_gamma_matches_reference_at_widths_around_the_vector(rng, K):
    V = 50
    # lengths 1 to 19 cover every mix of the 8-, 4-, 2- and 1-entry blocks
    docs = random_docs(rng, 40, V, max_len=19)
    exp_elogbeta = _model(rng, K, V)
    alpha = np.full(K, 0.3)
    keys = training_keys(4, 0, 0, len(docs))
    gamma0 = np.empty((len(docs), K))
    fill_gamma_init(keys, gamma0)
    gamma, _ = fit_gamma(bow_to_chunk(docs), exp_elogbeta, alpha, keys, 200, 1e-10)
    ref_gamma, _ = ref_estep(docs, gamma0, alpha, np.ascontiguousarray(exp_elogbeta.T), 200, 1e-10)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-9)


def test_fit_gamma_in_float32_follows_the_float64_reference(rng):
    # the float32 kernel (its own exp∘ψ and no logarithm) against the float64 numpy reference, from the same start
    K, V = 40, 60
    docs = random_docs(rng, 30, V, max_len=25)
    exp_elogbeta = _model(rng, K, V)
    alpha = np.full(K, 0.05)
    keys = training_keys(2, 0, 0, len(docs))
    gamma0 = np.empty((len(docs), K), np.float32)
    fill_gamma_init(keys, gamma0)
    gamma, _ = fit_gamma(bow_to_chunk(docs), exp_elogbeta.astype(np.float32), alpha.astype(np.float32), keys, 30, 0.0)
    ref_gamma, _ = ref_estep(docs, gamma0.astype(np.float64), alpha, np.ascontiguousarray(exp_elogbeta.T), 30, 0.0)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-3, atol=1e-4)


@njit
def _add_then_accumulate(x, table, ids, counts, first, last, eps, weights, acc_add, acc_two):
    entries.add_entries(x, table, ids, counts, first, last, eps, acc_add)
    entries.accumulate_entries(x, table, ids, counts, first, last, eps, weights, acc_two)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,n", [(5, 19), (33, 7), (64, 1), (100, 19), (100, 40), (700, 13), (700, 40)])
def test_weights_first_gives_the_bits_of_block_by_block(rng, dtype, K, n):
    # phase 1 computes all of a document's weights, then its sums, while its rows fit in L1 and are not too short
    # (else block by block, as phase 2 does): both must give the same bits; (700, 40) is over ROWS_IN_L1, K = 5
    # and 33 under TWO_PASS_MIN_WIDTH
    table = (rng.random((50, K)) / K).astype(dtype)
    x = rng.random(K).astype(dtype)
    ids = rng.integers(0, 50, n + 6).astype(np.int32)
    counts = rng.integers(1, 6, n + 6).astype(dtype)
    weights = np.full(n + 6, -5.0, dtype)
    acc_add, acc_two = np.zeros(K, dtype), np.full(K, np.nan, dtype)  # the two-pass kernel sets acc, not adds
    eps = float(np.finfo(dtype).eps)
    _add_then_accumulate(x, table, ids, counts, 3, 3 + n, eps, weights, acc_add, acc_two)
    np.testing.assert_array_equal(acc_two, acc_add)
    expected = sum(counts[j] / (x.astype(np.float64) @ table[ids[j]] + eps) * table[ids[j]] for j in range(3, 3 + n))
    np.testing.assert_allclose(acc_add, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.all(weights[:3] == -5.0) and np.all(weights[3 + n:] == -5.0)  # only the entries' own places


@njit
def _gamma_step(g, alpha, acc, eth):
    return kernels._gamma_step(g, alpha, acc, eth)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 15, 16, 17, 100])
def test_gamma_step_matches_numpy(rng, dtype, K):
    g_buf = np.full(K + 16, -9.0, dtype)
    g = g_buf[:K]
    g[:] = rng.random(K) * 3
    old = g.astype(np.float64)
    alpha = rng.random(K).astype(dtype)
    acc, eth = rng.random(K + 16).astype(dtype), rng.random(K + 16).astype(dtype)  # longer buffers, as in phase 1
    change, total = _gamma_step(g, alpha, acc, eth)
    new = alpha + eth[:K].astype(np.float64) * acc[:K]
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(g, new, rtol=tol)
    assert change == pytest.approx(np.abs(new - old).sum(), rel=10 * tol)
    assert total == pytest.approx(new.sum(), rel=10 * tol)
    assert np.all(g_buf[K:] == -9.0)


def test_fit_gamma_with_gamma_threshold_zero_runs_every_iteration(rng):
    docs = random_docs(rng, 30, 40) + [[]]
    exp_elogbeta = _model(rng, 20, 40, np.float32)
    _, iters = fit_gamma(bow_to_chunk(docs), exp_elogbeta, np.full(20, 0.05, np.float32),
                         training_keys(1, 0, 0, len(docs)), 13, 0.0)
    assert iters.tolist() == [13] * 30 + [0]


@njit
def _square_flushed(x):
    mode = flush_subnormals()
    y = x * x
    restore_fp_mode(mode)
    return y


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the FP mode is set on x86 only")
def test_kernels_flush_subnormals_inside_and_restore_the_mode_after(rng):
    tiny = np.float32(1e-20)
    assert _square_flushed(tiny) == 0.0  # 1e-40 is subnormal in float32: flushed inside
    assert tiny * tiny > 0.0  # and the thread's mode is back: numpy gets the subnormal
    docs = random_docs(rng, 20, 30)
    with kernel_threads(1):  # the kernel runs on this thread
        fit_gamma(bow_to_chunk(docs), _model(rng, 50, 30, np.float32), np.full(50, 0.02, np.float32),
                  training_keys(1, 0, 0, len(docs)), 5, 0.0)
    assert np.multiply(tiny, tiny) > 0.0
