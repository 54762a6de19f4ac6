"""E-step kernels against the plain numpy reference, and their determinism."""

import numpy as np
import pytest
from conftest import random_docs
from reference import dirichlet_expectation
from reference import estep as ref_estep

from distlda.corpora.csr import bow_to_chunk
from distlda.core.estep import BatchAccumulator, EStepParams, chunk_partial, fit_gamma
from distlda.kernels.mstep import topic_expectations
from distlda.kernels.parallel import kernel_threads
from distlda.kernels.rng import content_keys, fill_gamma_init, training_keys

K, V = 6, 40


def _model(rng, dtype=np.float64):
    sstats = rng.gamma(2.0, 1.0, (V, K)).astype(dtype)
    exp_elogbeta = np.empty((V, K), dtype)
    topic_expectations(sstats, np.full((V, 1), 0.05, dtype), exp_elogbeta)
    return np.ascontiguousarray(exp_elogbeta.T), exp_elogbeta


def _run(chunk, exp_elogbeta, alpha, keys, iterations=200, threshold=1e-10, collect=True):
    gamma, iters = fit_gamma(chunk, exp_elogbeta, alpha, keys, iterations, threshold)
    acc = BatchAccumulator(EStepParams(exp_elogbeta, alpha, iterations, threshold, 0, collect))
    acc.add(chunk, gamma)
    return gamma, iters, acc.stats


def _against_reference(rng, docs, alpha, seed):
    """Fit ``docs`` with the kernels and with the numpy reference; check γ and the statistics agree."""
    chunk = bow_to_chunk(docs)
    eb, exp_elogbeta = _model(rng)
    keys = training_keys(seed, 0, 0, len(docs))
    gamma0 = np.empty((len(docs), K))
    fill_gamma_init(keys, gamma0)
    gamma, _, stats = _run(chunk, exp_elogbeta, alpha, keys)
    ref_gamma, ref_sstats = ref_estep(docs, gamma0, alpha, eb, 200, 1e-10)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-9)
    np.testing.assert_allclose(stats.raw.T * eb, ref_sstats, rtol=1e-9, atol=1e-12)
    return eb, stats, ref_gamma


def test_gamma_and_sstats_match_reference_float64(rng):
    docs = random_docs(rng, 60, V, empty_every=7)
    eb, stats, ref_gamma = _against_reference(rng, docs, np.full(K, 0.2), 42)
    # every word of the corpus is accounted for: sstats sum to the total count
    assert (stats.raw.T * eb).sum() == pytest.approx(sum(c for d in docs for _, c in d), rel=1e-10)
    assert stats.numdocs == len(docs)
    ref_elog = sum(dirichlet_expectation(g) for g in ref_gamma)
    np.testing.assert_allclose(stats.elogtheta_sum, ref_elog, rtol=1e-9)


def test_documents_and_words_of_odd_and_even_entry_counts_match_reference(rng):
    # the kernels take entries two at a time, with a tail for an odd count: cover 1 to 5 entries per document,
    # and words met by 1, 2 and 3 documents (the reduce pairs a word's entries)
    docs = [[(0, 2.0)], [(0, 1.0), (1, 3.0)], [(0, 1.0), (2, 1.0), (3, 2.0)], [(4, 1.0), (5, 1.0), (6, 2.0), (7, 1.0)],
            [(8, 4.0), (9, 1.0), (10, 1.0), (11, 1.0), (12, 2.0)], [(1, 1.0)]]
    _against_reference(rng, docs, np.full(K, 0.3), 3)


def test_empty_documents_get_alpha_and_no_statistics(rng):
    eb, exp_elogbeta = _model(rng)
    alpha = np.linspace(0.1, 0.6, K)
    chunk = bow_to_chunk([[], [], []])
    gamma, iters, stats = _run(chunk, exp_elogbeta, alpha, training_keys(1, 0, 0, 3))
    np.testing.assert_array_equal(gamma, np.tile(alpha, (3, 1)))
    assert not stats.raw.any()
    assert iters.tolist() == [0, 0, 0]


def test_float32_close_to_float64(rng):
    docs = random_docs(rng, 50, V)
    chunk = bow_to_chunk(docs)
    eb, exp_elogbeta = _model(rng)
    keys = training_keys(3, 0, 0, len(docs))
    g64, _, s64 = _run(chunk, exp_elogbeta, np.full(K, 0.2), keys, 100, 1e-6)
    g32, _, s32 = _run(chunk, exp_elogbeta.astype(np.float32), np.full(K, 0.2, np.float32), keys, 100, 1e-6)
    assert g32.dtype == np.float32 and s32.raw.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-2, atol=5e-3)


def test_result_does_not_depend_on_thread_count(rng):
    docs = random_docs(rng, 300, V, max_len=25)
    chunk = bow_to_chunk(docs)
    _, exp_elogbeta = _model(rng, np.float32)
    alpha = np.full(K, 0.1, np.float32)
    keys = training_keys(9, 2, 0, len(docs))
    results = []
    for threads in (1, 2, 3):
        with kernel_threads(threads):
            results.append(_run(chunk, exp_elogbeta, alpha, keys, 50, 1e-3))
    for gamma, _, stats in results[1:]:
        np.testing.assert_array_equal(gamma, results[0][0])
        np.testing.assert_array_equal(stats.raw, results[0][2].raw)
        np.testing.assert_array_equal(stats.elogtheta_sum, results[0][2].elogtheta_sum)


def test_batch_is_its_chunks_partials_added_in_order(rng):
    """A batch's statistics are each chunk's partial (summed from zero) added in chunk order: bitwise what anyone who
    holds the partials computes, whichever process reduced which chunk; to the whole batch reduced as one chunk they
    differ by rounding only."""
    docs = random_docs(rng, 100, V)
    whole = bow_to_chunk(docs)
    _, exp_elogbeta = _model(rng, np.float32)
    alpha = np.full(K, 0.1, np.float32)
    keys = training_keys(5, 0, 0, len(docs))
    gamma, _, stats = _run(whole, exp_elogbeta, alpha, keys, 50, 1e-3)
    acc = BatchAccumulator(EStepParams(exp_elogbeta, alpha, 50, 1e-3, 0, True))
    by_hand = np.zeros_like(stats.raw)
    for lo, hi in [(0, 13), (13, 14), (14, 70), (70, 100)]:
        part = whole.slice(lo, hi)
        g, _ = fit_gamma(part, exp_elogbeta, alpha, keys[lo:hi], 50, 1e-3)
        np.testing.assert_array_equal(g, gamma[lo:hi])
        acc.add(part, g)
        partial = chunk_partial(part, g, exp_elogbeta)
        assert np.all(np.diff(partial.words) > 0) and set(partial.words) == set(part.ids.tolist())
        for t, v in enumerate(partial.words):
            by_hand[v] = by_hand[v] + partial.raw[t]
    np.testing.assert_array_equal(acc.stats.raw, by_hand)
    np.testing.assert_allclose(acc.stats.raw, stats.raw, rtol=1e-5)
    np.testing.assert_array_equal(acc.stats.elogtheta_sum, stats.elogtheta_sum)  # a sum over documents, in order
    assert acc.stats.numdocs == stats.numdocs == 100


def test_partial_rows_between(rng):
    chunk = bow_to_chunk(random_docs(rng, 30, V))
    _, exp_elogbeta = _model(rng, np.float32)
    gamma = np.ones((30, K), np.float32)
    partial = chunk_partial(chunk, gamma, exp_elogbeta)
    cut = int(partial.words[partial.words.size // 2])
    low, high = partial.rows_between(0, cut), partial.rows_between(cut, V)
    np.testing.assert_array_equal(np.concatenate([low.words, high.words]), partial.words)
    np.testing.assert_array_equal(np.concatenate([low.raw, high.raw]), partial.raw)
    assert low.words.max() < cut <= high.words.min()


def test_chunks_must_arrive_in_document_order(rng):
    docs = random_docs(rng, 10, V)
    chunk = bow_to_chunk(docs)
    _, exp_elogbeta = _model(rng)
    acc = BatchAccumulator(EStepParams(exp_elogbeta, np.full(K, 0.1), 10, 1e-3, 0))
    acc.add(chunk.slice(5, 10), np.ones((5, K)))
    with pytest.raises(ValueError, match="document order"):
        acc.add(chunk.slice(0, 5), np.ones((5, K)))


def test_keys_are_pure_functions_of_their_inputs():
    a = training_keys(7, 1, 100, 50)
    np.testing.assert_array_equal(a, training_keys(7, 1, 100, 50))
    np.testing.assert_array_equal(a[10:], training_keys(7, 1, 110, 40))
    assert not np.any(a == training_keys(7, 2, 100, 50))
    assert not np.any(a == training_keys(8, 1, 100, 50))
    assert len(set(a.tolist())) == 50
    one = bow_to_chunk([[(1, 2.0), (3, 1.0)], [(0, 1.0)], [(1, 2.0), (3, 1.0)]])
    keys = content_keys(3, one.indptr, one.ids, one.counts)
    assert keys[0] == keys[2] != keys[1]


def test_initial_gamma_is_gamma_100_like():
    keys = training_keys(1, 0, 0, 2000)
    g = np.empty((2000, 50))
    fill_gamma_init(keys, g)
    assert g.mean() == pytest.approx(1.0, abs=0.005)
    assert g.std() == pytest.approx(0.1, abs=0.005)
    assert g.min() > 0.5
