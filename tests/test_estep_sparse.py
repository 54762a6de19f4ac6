"""Phase 1 of the E-step skips the vectors of a document's exp(E[log θ]) that are exactly zero.

In float32, a topic whose γ stays below about 1/87 has exp(E[log θ]) = 0 exactly (its exp underflows), which is
most topics of a short document once K is in the hundreds. Such a vector adds exact zeros to every dot product
and its γ is α + 0 · acc whatever acc holds, so skipping it must give the bits of the dense loop: these tests hold
the kernel to that, against a dense loop built from the same blocks, and check that the skipping really happens.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_docs
from numba import njit

from distlda.core.estep import fit_gamma
from distlda.corpora.csr import bow_to_chunk
from distlda.kernels import entries
from distlda.kernels import estep as kernels
from distlda.kernels.fpmode import flush_subnormals, restore_fp_mode
from distlda.kernels.mstep import topic_expectations
from distlda.kernels.rng import fill_gamma_init, training_keys
from distlda.kernels.vectorir import vector_lanes

LANES = {dtype: vector_lanes(np.dtype(dtype).itemsize) for dtype in (np.float32, np.float64)}


@njit
def _nonzero(x, active):
    return entries.nonzero_vectors(x, active)


@njit
def _accumulate_both(x, table, ids, counts, first, last, eps, weights, active, n_active, acc_dense, acc_listed):
    entries.accumulate_entries(x, table, ids, counts, first, last, eps, weights, acc_dense)
    entries.accumulate_active(x, table, ids, counts, first, last, eps, weights, active, n_active, acc_listed)


@njit
def _dense_fit(indptr, ids, counts, table, alpha, gamma0, iterations, threshold, gamma, iters):
    """Phase 1 one document at a time over every vector: the loop the kernel had before it skipped any."""
    eps = np.finfo(table.dtype).eps
    eth = np.zeros(table.shape[1], table.dtype)
    acc = np.zeros(table.shape[1], table.dtype)
    weights = np.empty(ids.shape[0], table.dtype)
    mode = flush_subnormals()
    for d in range(indptr.shape[0] - 1):
        g = gamma[d]
        g[:] = gamma0[d]
        kernels._theta_from_gamma(g, eth)
        it = 0
        while it < iterations:
            it += 1
            entries.accumulate_entries(eth, table, ids, counts, indptr[d], indptr[d + 1], eps, weights, acc)
            if kernels._update_gamma(g, alpha, acc, eth, threshold):
                break
        iters[d] = it
    restore_fp_mode(mode)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vectors", [1, 2, 5, 9])
def test_nonzero_vectors_lists_every_vector_with_a_lane_other_than_zero(rng, dtype, vectors):
    lanes = LANES[dtype]
    x = np.zeros(vectors * lanes, dtype)
    x[rng.random(x.shape[0]) < 0.3] = -0.0  # negative zero is zero
    hit = rng.random(vectors) < 0.5
    for v in np.flatnonzero(hit):
        x[v * lanes + rng.integers(lanes)] = rng.choice([1e-30, 0.5, np.nan])  # tiny, ordinary or NaN: not zero
    active = np.full(vectors, -7, np.int32)
    n = _nonzero(x, active)
    assert active[:n].tolist() == np.flatnonzero(hit).tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vectors,n", [(1, 5), (4, 1), (7, 19), (40, 13)])
def test_listed_vectors_get_the_dense_bits_and_the_others_zero(rng, dtype, vectors, n):
    lanes = LANES[dtype]
    K = vectors * lanes
    table = (rng.random((30, K)) / K).astype(dtype)
    x = rng.random(K).astype(dtype)
    zero = rng.random(vectors) < 0.5
    zero[0] = not zero[-1]  # at least one vector of each kind when there are two or more
    if n == 1:
        zero[:] = True  # and no vector to compute at all
    for v in np.flatnonzero(zero):
        x[v * lanes:(v + 1) * lanes] = 0.0
    ids = rng.integers(0, 30, n).astype(np.int32)
    counts = rng.integers(1, 6, n).astype(dtype)
    active = np.empty(vectors, np.int32)
    n_active = _nonzero(x, active)
    acc_dense, acc_listed = np.zeros(K, dtype), np.full(K, -3.0, dtype)
    eps = float(np.finfo(dtype).eps)
    _accumulate_both(x, table, ids, counts, 0, n, eps, np.empty(n, dtype), active, n_active, acc_dense, acc_listed)
    listed = np.repeat(~zero, lanes)
    np.testing.assert_array_equal(acc_listed[listed], acc_dense[listed])
    assert np.all(acc_listed[~listed] == 0.0)  # γ = α + 0 · 0 there, whatever the entries


def _peaked_model(rng, K, V):
    """exp(E[log β]) (float32) of topics that each favour a few words, so that documents use few topics."""
    sstats = rng.gamma(0.05, 1.0, (V, K)) * 50
    exp_elogbeta = np.empty((V, K), np.float64)
    topic_expectations(sstats, np.full((V, 1), 0.01), exp_elogbeta)
    return exp_elogbeta.astype(np.float32)


@pytest.mark.parametrize("K", [100, 333])
@pytest.mark.parametrize("threshold", [0.0, 1e-3])
def test_phase_one_gives_the_bits_of_the_dense_loop_while_it_skips_zero_vectors(rng, K, threshold):
    V = 300
    docs = random_docs(rng, 60, V, max_len=25, empty_every=17)
    exp_elogbeta = _peaked_model(rng, K, V)
    alpha = np.full(K, 0.002, np.float32)  # γ near α: exp(E[log θ]) underflows to exactly 0
    keys = training_keys(5, 0, 0, len(docs))
    chunk = bow_to_chunk(docs).for_kernels(np.float32)
    gamma, iters = fit_gamma(chunk, exp_elogbeta, alpha, keys, 40, threshold)

    table, local = kernels._chunk_rows(chunk.ids, exp_elogbeta)
    gamma0 = np.empty((len(docs), K), np.float32)
    fill_gamma_init(keys, gamma0)
    dense, dense_iters = np.empty_like(gamma0), np.empty(len(docs), np.int32)
    nonempty = np.diff(chunk.indptr) > 0
    _dense_fit(chunk.indptr, local, chunk.counts, table, alpha, gamma0, 40, threshold, dense, dense_iters)
    np.testing.assert_array_equal(gamma[nonempty], dense[nonempty])
    np.testing.assert_array_equal(iters[nonempty], dense_iters[nonempty])

    # the skipping was exercised, as the kernel counts the vectors it ran over: fewer than every vector at every
    # iteration for most documents, and all of them at the first (no vector of the starting γ is zero)
    used = np.full(len(docs), -1, np.int64)
    again = np.empty_like(gamma)
    kernels.estep_gamma(chunk.indptr, chunk.ids, chunk.counts, exp_elogbeta, alpha, np.require(keys, np.uint64),
                        40, threshold, again, np.empty(len(docs), np.int32), used)
    np.testing.assert_array_equal(again, gamma)
    vectors = -(-K // LANES[np.float32])
    assert np.all(used[~nonempty] == 0)
    assert np.all((used[nonempty] >= vectors) & (used[nonempty] <= iters[nonempty] * vectors))
    assert np.mean(used[nonempty] < iters[nonempty] * vectors) > 0.5
