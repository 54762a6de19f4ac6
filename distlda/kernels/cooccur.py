"""numba kernels of the word co-occurrence matrix of the anchor-word start (:mod:`distlda.core.init`).

For the ``m`` covered words, documents ``d`` with covered counts ``x_d`` (length ``n_d = Σ_i x_di``) add

    Q[i, j] += (x_di x_dj − [i = j] x_di) / (n_d (n_d − 1))          (documents with n_d > 1)

to a dense m × m float64 matrix. :func:`add_cooccurrence` adds a chunk of documents in two steps:

1. :func:`merge_documents` — each document's covered entries with repeated columns merged (in the order the
   columns first appear), and its weight ``w_d = 1 / (n_d (n_d − 1))``; in parallel over documents (each
   writes its own slice);
2. each pair of a document's entries, ``a`` before ``b``, adds ``w_d x_a x_b`` to ``q[col_a, col_b]``, and each
   entry ``w_d x_a (x_a − 1)`` to ``q[col_a, col_a]``: one addition per pair, half those of the full outer
   product; in parallel over blocks of rows (a row's additions all come from its own word's entries).

:func:`symmetrize` ends the sum once every chunk is in: ``Q[i, j] = q[i, j] + q[j, i]`` off the diagonal (a
pair lands in either triangle, as its two words come in their document). Sorting each document's columns
to put every pair in the upper triangle was measured: it cost more than it saved, the additions scatter over
the matrix either way.

A block of rows belongs to one thread and takes the documents in order, so every element is the same sum in
the same order whatever the number of threads: the result does not depend on it.

Numpy equivalent of the whole (``x`` the documents × covered words as a sparse matrix, ``w`` the weights)::

    Q = (x.T @ diags(w) @ x).toarray() - diag(x.T @ w)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from distlda.kernels.compile import KERNEL
from distlda.kernels.parallel import current_threads, parallel_for

__all__ = ["merge_documents", "row_bounds", "add_cooccurrence", "symmetrize"]


@njit(**KERNEL)
def _merge_range(indptr: np.ndarray, cols: np.ndarray, counts: np.ndarray, m: int, merged_cols: np.ndarray,
                 merged_vals: np.ndarray, lengths: np.ndarray, weights: np.ndarray, lo: int, hi: int) -> None:
    """:func:`merge_documents` for the documents lo..hi."""
    slot = np.full(m, -1, dtype=np.int64)  # a column's place in the document being merged, or -1
    for d in range(lo, hi):
        start = indptr[d]
        u = 0
        n = 0.0
        for p in range(start, indptr[d + 1]):
            c = cols[p]
            if c < 0:
                continue
            n += counts[p]
            if slot[c] < 0:
                slot[c] = start + u
                merged_cols[start + u] = c
                merged_vals[start + u] = counts[p]
                u += 1
            else:
                merged_vals[slot[c]] += counts[p]
        for a in range(start, start + u):
            slot[merged_cols[a]] = -1
        lengths[d] = u
        weights[d] = 1.0 / (n * (n - 1.0)) if n > 1.0 else 0.0


def merge_documents(indptr: np.ndarray, cols: np.ndarray, counts: np.ndarray,
                    m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each document's covered entries with repeated columns merged, and its co-occurrence weight.

    Parameters
    ----------
    indptr : numpy.ndarray of int64, shape (n_docs + 1,)
        Document boundaries in ``cols`` and ``counts``.
    cols : numpy.ndarray of int64
        Column of each entry in ``[0, m)``, or −1 for a word the matrix does not cover (skipped).
    counts : numpy.ndarray of float64
        Count of each entry.
    m : int
        Covered words.

    Returns
    -------
    merged_cols, merged_vals : numpy.ndarray of int64 and float64, shaped as ``cols``
        Document ``d``'s distinct columns (in the order they first appear) and their summed counts, at
        ``indptr[d] : indptr[d] + lengths[d]`` (the rest of its slice is unused).
    lengths : numpy.ndarray of int64, shape (n_docs,)
    weights : numpy.ndarray of float64, shape (n_docs,)
        ``1 / (n_d (n_d − 1))`` for the document's covered length ``n_d`` when it is over 1, else 0.
    """
    n_docs = len(indptr) - 1
    merged_cols = np.empty(len(cols), dtype=np.int64)
    merged_vals = np.empty(len(cols), dtype=np.float64)
    lengths = np.empty(n_docs, dtype=np.int64)
    weights = np.empty(n_docs, dtype=np.float64)
    parallel_for(_merge_range, n_docs, indptr, cols, counts, int(m), merged_cols, merged_vals, lengths, weights)
    return merged_cols, merged_vals, lengths, weights


def row_bounds(row_work: np.ndarray, pieces: int) -> np.ndarray:
    """Boundaries of at most ``pieces`` blocks of consecutive rows of about equal work (``row_work[i] >= 0``: the
    expected additions into row ``i``). Any boundaries give the same matrix: they only balance the threads."""
    m = len(row_work)
    cumulative = np.cumsum(np.asarray(row_work, dtype=np.float64))
    if m == 0 or pieces <= 1 or cumulative[-1] <= 0:
        return np.array([0, m], dtype=np.int64)
    inner = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, pieces) / pieces, side="right") + 1
    return np.unique(np.concatenate(([0], np.clip(inner, 1, m), [m]))).astype(np.int64)


@njit(**KERNEL)
def _pairs_range(indptr: np.ndarray, lengths: np.ndarray, merged_cols: np.ndarray, merged_vals: np.ndarray,
                 weights: np.ndarray, bounds: np.ndarray, q: np.ndarray, lo: int, hi: int) -> None:
    """The additions of the entries whose column (a row of ``q``) is in ``bounds[lo] .. bounds[hi]``, documents
    in order: one per pair ``a`` before ``b`` into ``q[col_a, col_b]``, one per entry into ``q[col_a, col_a]``."""
    r0 = bounds[lo]
    r1 = bounds[hi]
    for d in range(len(lengths)):
        w = weights[d]
        if w == 0.0:
            continue
        end = indptr[d] + lengths[d]
        for a in range(indptr[d], end):
            i = merged_cols[a]
            if i < r0 or i >= r1:
                continue
            x = merged_vals[a]
            scaled = w * x
            q[i, i] += scaled * (x - 1.0)
            for b in range(a + 1, end):
                q[i, merged_cols[b]] += scaled * merged_vals[b]


def add_cooccurrence(indptr: np.ndarray, cols: np.ndarray, counts: np.ndarray, q: np.ndarray,
                     row_work: np.ndarray | None = None) -> None:
    """Add the co-occurrence of a chunk of documents to ``q`` (m × m float64, C order), each pair of distinct
    words of a document to one of ``q[i, j]`` and ``q[j, i]``: :func:`symmetrize` completes the matrix once
    every chunk is in. Runs on :func:`~distlda.kernels.parallel.current_threads` blocks of rows.

    Parameters
    ----------
    indptr, cols, counts : numpy.ndarray
        The chunk as :func:`merge_documents` takes it (columns in ``[0, m)`` or −1 for an uncovered word).
    q : numpy.ndarray of float64, shape (m, m)
        The matrix to add to.
    row_work : numpy.ndarray, shape (m,), optional
        Expected additions into each row (the words' frequencies will do), to balance the threads; equal if
        not given. The result does not depend on it.
    """
    m = q.shape[0]
    merged_cols, merged_vals, lengths, weights = merge_documents(indptr, cols, counts, m)
    # one block per thread: every block reads every document, so more blocks would cost more than they balance
    bounds = row_bounds(np.ones(m) if row_work is None else row_work, current_threads())
    parallel_for(_pairs_range, len(bounds) - 1, indptr, lengths, merged_cols, merged_vals, weights, bounds, q,
                 pieces_per_thread=1)


@njit(**KERNEL)
def _symmetrize_range(q: np.ndarray, lo: int, hi: int) -> None:
    """q[i, j] = q[j, i] = q[i, j] + q[j, i] for the rows i in lo..hi and j < i."""
    for i in range(lo, hi):
        for j in range(i):
            total = q[i, j] + q[j, i]
            q[i, j] = total
            q[j, i] = total


def symmetrize(q: np.ndarray) -> None:
    """Replace the square ``q`` by ``q + qᵀ`` off its diagonal (in place; the diagonal is kept)."""
    parallel_for(_symmetrize_range, q.shape[0], q)
