"""The co-occurrence kernels of the anchor-word start (distlda.kernels.cooccur): a numpy reference, and the same
bits on any number of threads."""

from __future__ import annotations

import numpy as np
import pytest

from distlda.kernels import cooccur
from distlda.kernels.parallel import kernel_threads


def _chunk(rng: np.random.Generator, n_docs: int, m: int, fractional: bool = False) -> tuple[np.ndarray, ...]:
    """A chunk with repeated columns, uncovered words (−1), empty and one-word documents."""
    lengths = rng.integers(0, 12, size=n_docs)
    lengths[:3] = [0, 1, 2][:n_docs]
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    cols = rng.integers(-1, m, size=indptr[-1]).astype(np.int64)
    counts = rng.uniform(0.2, 3.0, size=indptr[-1]) if fractional else rng.integers(1, 4, size=indptr[-1]) * 1.0
    return indptr, cols, counts.astype(np.float64)


def _reference(indptr: np.ndarray, cols: np.ndarray, counts: np.ndarray, m: int) -> np.ndarray:
    """Σ_d (x_d x_dᵀ − diag(x_d)) / (n_d (n_d − 1)) over dense count vectors, by the definition."""
    q = np.zeros((m, m))
    for d in range(len(indptr) - 1):
        x = np.zeros(m)
        for c, n in zip(cols[indptr[d]:indptr[d + 1]], counts[indptr[d]:indptr[d + 1]]):
            if c >= 0:
                x[c] += n
        total = x.sum()
        if total > 1:
            q += (np.outer(x, x) - np.diag(x)) / (total * (total - 1))
    return q


def _cooccurrence(chunks: list[tuple[np.ndarray, ...]], m: int, row_work: np.ndarray | None = None) -> np.ndarray:
    q = np.zeros((m, m))
    for indptr, cols, counts in chunks:
        cooccur.add_cooccurrence(indptr, cols, counts, q, row_work=row_work)
    cooccur.symmetrize(q)
    return q


@pytest.mark.parametrize("fractional", [False, True])
def test_cooccurrence_matches_its_definition_over_several_chunks(fractional: bool) -> None:
    rng = np.random.default_rng(5)
    m = 23
    chunks = [_chunk(rng, n, m, fractional) for n in (41, 1, 17)]
    expected = sum(_reference(*chunk, m) for chunk in chunks)
    q = _cooccurrence(chunks, m)
    np.testing.assert_allclose(q, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(q, q.T)
    assert fractional or q.min() >= 0.0  # (a count under 1 makes its diagonal term negative)


def test_merged_documents_and_their_weights() -> None:
    indptr = np.array([0, 4, 5, 7, 7], dtype=np.int64)
    cols = np.array([3, -1, 3, 0, 2, -1, 1], dtype=np.int64)
    counts = np.array([1.0, 5.0, 2.0, 1.0, 4.0, 1.0, 1.0])
    merged_cols, merged_vals, lengths, weights = cooccur.merge_documents(indptr, cols, counts, 4)
    np.testing.assert_array_equal(lengths, [2, 1, 1, 0])
    np.testing.assert_array_equal(merged_cols[0:2], [3, 0])  # in the order the columns first appear
    np.testing.assert_array_equal(merged_vals[0:2], [3.0, 1.0])  # the repeated column summed, -1 skipped
    np.testing.assert_array_equal(merged_cols[4:5], [2])
    np.testing.assert_array_equal(merged_cols[5:6], [1])
    # n_d = 4, 4 and 1 covered words: 1 / (n (n − 1)), and 0 for a document of one word or none
    np.testing.assert_array_equal(weights, [1 / 12, 1 / 12, 0.0, 0.0])


def test_the_same_bits_on_any_number_of_threads_and_any_row_blocks() -> None:
    rng = np.random.default_rng(11)
    m = 300
    chunks = [_chunk(rng, 500, m, fractional=True) for _ in range(3)]
    with kernel_threads(1):
        one = _cooccurrence(chunks, m)
    for threads in (2, 3, 5):
        with kernel_threads(threads):
            for row_work in (None, rng.uniform(0.0, 1.0, size=m), np.r_[np.ones(5), np.zeros(m - 5)]):
                np.testing.assert_array_equal(_cooccurrence(chunks, m, row_work), one)


def test_row_bounds_cover_every_row_in_blocks_of_about_equal_work() -> None:
    work = np.r_[np.full(10, 100.0), np.ones(990)]
    bounds = cooccur.row_bounds(work, 4)
    assert bounds[0] == 0 and bounds[-1] == 1000 and np.all(np.diff(bounds) > 0) and len(bounds) <= 5
    shares = [work[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])]
    assert max(shares) < 0.4 * work.sum()  # a quarter each, give or take a row
    np.testing.assert_array_equal(cooccur.row_bounds(work, 1), [0, 1000])
    np.testing.assert_array_equal(cooccur.row_bounds(np.zeros(7), 3), [0, 7])
    np.testing.assert_array_equal(cooccur.row_bounds(np.zeros(0), 3), [0, 0])
