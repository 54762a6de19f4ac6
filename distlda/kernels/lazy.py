"""numba kernels of the lazy, sparse M-step: work only on the rows of the words a mini-batch touches.

The statistics are kept as ``sstats = σ · s̃`` with one global scale σ, so the
blend ``sstats ← a · sstats + b · raw ⊙ exp(E[log β])`` becomes ``σ ← a · σ`` for
every row plus, for the touched rows only, ``s̃_v ← s̃_v + (b / σ) · raw_v ⊙
exp(E[log β])_v``. The topic sums Σ_v s̃_vk are kept in float64 by adding each
touched row's change (new − old, from the values stored); exp(E[log β]) of a row
is recomputed only when a chunk that uses the word is fitted or reduced.

Every reduction runs over fixed blocks of touched words in block order, so the
results do not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from distlda.kernels.compile import KERNEL
from distlda.kernels.parallel import parallel_for
from distlda.kernels.special import exp_digamma_minus_t

__all__ = ["TOUCHED_BLOCK", "lazy_blend", "refresh_rows", "stale_rows"]

TOUCHED_BLOCK = 64
"""Touched words per block of the blend's partial topic sums (fixed: the sums must not depend on threads)."""


@njit(**KERNEL)
def _lazy_blend_range(s: np.ndarray, words: np.ndarray, raw: np.ndarray, used: np.ndarray, c: float,
                      partial: np.ndarray, lo: int, hi: int) -> None:
    """s[words[t]] += c · raw[t] ⊙ used[t] for the touched words of blocks lo..hi, and
    partial[blk, k] = Σ_{t in block} (new − old) of s[words[t], k], in float64."""
    n, K = raw.shape
    for blk in range(lo, hi):
        acc = np.zeros(K, dtype=np.float64)
        for t in range(blk * TOUCHED_BLOCK, min(n, (blk + 1) * TOUCHED_BLOCK)):
            row = s[words[t]]
            e = used[t]
            r = raw[t]
            for k in range(K):
                old = row[k]
                row[k] = old + c * (r[k] * e[k])
                acc[k] += np.float64(row[k]) - np.float64(old)  # what is stored, so the sums follow the rows
        for k in range(K):
            partial[blk, k] = acc[k]


@njit(cache=True, nogil=True)
def _sum_partial(partial: np.ndarray, out: np.ndarray) -> None:
    for blk in range(partial.shape[0]):
        for k in range(partial.shape[1]):
            out[k] += partial[blk, k]


def lazy_blend(s: np.ndarray, words: np.ndarray, raw: np.ndarray, used: np.ndarray, c: float,
               sums: np.ndarray) -> None:
    """Add ``c · raw ⊙ used`` to the rows ``words`` (ascending, distinct) of ``s`` (V × K) and their change to
    ``sums`` (float64, K), in a fixed order. ``raw`` and ``used`` (the exp(E[log β]) rows the batch was computed
    with) hold one row per touched word.

    numpy equivalent (but for rounding)::

        new = s[words] + c * raw * used
        sums += (new.astype(float64) - s[words]).sum(axis=0); s[words] = new
    """
    partial = np.empty(((words.shape[0] + TOUCHED_BLOCK - 1) // TOUCHED_BLOCK, s.shape[1]), dtype=np.float64)
    parallel_for(_lazy_blend_range, partial.shape[0], s, words, raw, used, float(c), partial)
    _sum_partial(partial, sums)


@njit(cache=True, nogil=True)
def stale_rows(ids: np.ndarray, stamp: np.ndarray, epoch: int) -> np.ndarray:
    """The distinct ids whose ``stamp`` is not ``epoch`` (in order of first occurrence); stamps them ``epoch``."""
    out = np.empty(ids.shape[0], dtype=np.int64)
    n = 0
    for j in range(ids.shape[0]):
        v = ids[j]
        if stamp[v] != epoch:
            stamp[v] = epoch
            out[n] = v
            n += 1
    return out[:n]


@njit(**KERNEL)
def _refresh_range(rows: np.ndarray, s: np.ndarray, eta: np.ndarray, scale: np.ndarray, psi: np.ndarray,
                   exp_elogbeta: np.ndarray, lo: int, hi: int) -> None:
    """exp_elogbeta[v, k] = exp(ψ(scale · s[v, k] + η[v, k]) − psi[k]) for v in rows[lo:hi], in the dtype of s."""
    K = s.shape[1]
    sigma = scale[0]
    shared = eta.shape[1] == 1
    for t in range(lo, hi):
        v = rows[t]
        row = s[v]
        out = exp_elogbeta[v]
        if shared:
            e = eta[v, 0]
            for k in range(K):
                out[k] = exp_digamma_minus_t(row[k] * sigma + e, psi[k])
        else:
            prior = eta[v]
            for k in range(K):
                out[k] = exp_digamma_minus_t(row[k] * sigma + prior[k], psi[k])


def refresh_rows(rows: np.ndarray, s: np.ndarray, eta: np.ndarray, scale: np.ndarray, psi: np.ndarray,
                 exp_elogbeta: np.ndarray) -> None:
    """Recompute the rows ``rows`` of ``exp_elogbeta`` (V × K) for λ = scale · s + η and normalisers ``psi``
    (ψ of the topic sums, dtype of ``s``); ``scale`` is a one-element array of that dtype, ``eta`` (V, 1) or
    (V, K). Rows are independent: any number of threads gives the same values."""
    parallel_for(_refresh_range, rows.shape[0], rows, s, eta, scale, psi, exp_elogbeta)
