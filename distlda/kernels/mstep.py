"""numba kernels of the M-step and of the topic-word expectations, on word-major arrays.

The model keeps its statistics and exp(E[log β]) word-major (V × K): the E-step
reads the K values of a word contiguously, and the M-step then touches every
array in memory order. After each mini-batch:

1. :func:`blend_word_stats` — sstats ← a · sstats + b · raw ⊙ exp(E[log β]);
2. :func:`topic_expectations` — exp(E[log β]) = exp(ψ(λ) − ψ(Σ_v λ)) for
   λ = η + sstats, with the per-topic sums reduced over fixed blocks of words in
   block order, so the result does not depend on the number of threads.

:func:`blend_and_expectations` does both with one pass fewer over the statistics
(each word's row is added to its block's sums right after it is blended), for the
M-steps that do not learn η.

η is passed word-major as a (V, 1) array (one value per word, shared by all
topics) or a (V, K) array (one per topic and word).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from distlda.kernels.compile import INLINE, KERNEL
from distlda.kernels.parallel import parallel_for
from distlda.kernels.special import digamma, exp_digamma_minus_t

__all__ = ["WORD_BLOCK", "blend_word_stats", "blend_and_expectations", "topic_expectations", "topic_log_sums",
           "topic_sums", "digamma_vector", "word_blocks", "blend_blocks", "expectations_blocks", "sum_block_sums"]

WORD_BLOCK = 256
"""Words per parallel work item."""

_KW = KERNEL


@njit(**INLINE)
def _blend_row(row: np.ndarray, raw: np.ndarray, exp_elogbeta: np.ndarray, a: float, b: float) -> None:
    """row ← a · row + b · raw ⊙ exp_elogbeta, for one word."""
    for k in range(row.shape[0]):
        row[k] = a * row[k] + b * (raw[k] * exp_elogbeta[k])


@njit(**INLINE)
def _add_lambda_row(row: np.ndarray, eta: np.ndarray, v: int, acc: np.ndarray) -> None:
    """acc[k] += λ_vk = row[k] + η[v, k] (η[v, 0] when shared by all topics), in float64."""
    if eta.shape[1] == 1:
        e = eta[v, 0]
        for k in range(row.shape[0]):
            acc[k] += row[k] + e
    else:
        for k in range(row.shape[0]):
            acc[k] += row[k] + eta[v, k]


@njit(**_KW)
def _blend_word_stats_range(sstats: np.ndarray, raw: np.ndarray, exp_elogbeta: np.ndarray, a: float, b: float, lo: int,
                            hi: int) -> None:
    """sstats[v, k] ← a · sstats[v, k] + b · raw[v, k] · exp_elogbeta[v, k] for the words of blocks lo..hi."""
    V = sstats.shape[0]
    for blk in range(lo, hi):
        for v in range(blk * WORD_BLOCK, min(V, (blk + 1) * WORD_BLOCK)):
            _blend_row(sstats[v], raw[v], exp_elogbeta[v], a, b)


@njit(**_KW)
def _blend_and_sum_range(sstats: np.ndarray, raw: np.ndarray, exp_elogbeta: np.ndarray, a: float, b: float,
                         eta: np.ndarray, partial: np.ndarray, lo: int, hi: int) -> None:
    """The blend of :func:`_blend_word_stats_range` and the block sums of :func:`_block_sums_range` in one pass
    over the words of blocks lo..hi (each row is summed right after it is blended, while it is in cache)."""
    V, K = sstats.shape
    for blk in range(lo, hi):
        acc = np.zeros(K, dtype=np.float64)
        for v in range(blk * WORD_BLOCK, min(V, (blk + 1) * WORD_BLOCK)):
            row = sstats[v]
            _blend_row(row, raw[v], exp_elogbeta[v], a, b)
            _add_lambda_row(row, eta, v, acc)
        for k in range(K):
            partial[blk, k] = acc[k]


@njit(**_KW)
def _block_sums_range(sstats: np.ndarray, eta: np.ndarray, partial: np.ndarray, lo: int, hi: int) -> None:
    """partial[blk, k] = Σ_{v in block} (sstats[v, k] + η[v, k])."""
    V, K = sstats.shape
    for blk in range(lo, hi):
        acc = np.zeros(K, dtype=np.float64)
        for v in range(blk * WORD_BLOCK, min(V, (blk + 1) * WORD_BLOCK)):
            _add_lambda_row(sstats[v], eta, v, acc)
        for k in range(K):
            partial[blk, k] = acc[k]


@njit(cache=True, nogil=True)
def _sum_blocks(partial: np.ndarray) -> np.ndarray:
    nblocks, K = partial.shape
    out = np.zeros(K, dtype=np.float64)
    for blk in range(nblocks):
        for k in range(K):
            out[k] += partial[blk, k]
    return out


@njit(**_KW)
def _expectations_range(sstats: np.ndarray, eta: np.ndarray, psi_rows: np.ndarray, exp_elogbeta: np.ndarray, lo: int,
                        hi: int) -> None:
    """exp_elogbeta[v, k] = exp(ψ(sstats[v, k] + η[v, k]) − psi_rows[k]) for the words of blocks lo..hi.

    ``psi_rows`` has the dtype of ``sstats``, and each word's row is read and written as a
    contiguous slice: so LLVM vectorises the loop over topics (it kept it scalar when the
    normaliser was converted from float64 element by element).
    """
    V, K = sstats.shape
    shared = eta.shape[1] == 1
    for blk in range(lo, hi):
        for v in range(blk * WORD_BLOCK, min(V, (blk + 1) * WORD_BLOCK)):
            row = sstats[v]
            out = exp_elogbeta[v]
            if shared:
                e = eta[v, 0]
                for k in range(K):
                    out[k] = exp_digamma_minus_t(row[k] + e, psi_rows[k])
            else:
                prior = eta[v]
                for k in range(K):
                    out[k] = exp_digamma_minus_t(row[k] + prior[k], psi_rows[k])


def _partial_sums(sstats: np.ndarray) -> np.ndarray:
    return np.empty((_word_blocks(sstats.shape[0]), sstats.shape[1]), dtype=np.float64)


def topic_sums(sstats: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Σ_v λ_vk for each topic k (float64), reduced in a fixed order."""
    partial = _partial_sums(sstats)
    parallel_for(_block_sums_range, partial.shape[0], sstats, eta, partial)
    return _sum_blocks(partial)


@njit(cache=True, nogil=True)
def _digamma_vector(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = digamma(x[i])
    return out


def topic_log_sums(sstats: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """ψ(Σ_v λ_vk) for each topic k: the normaliser of E[log β_k]."""
    return _digamma_vector(topic_sums(sstats, eta))


def topic_expectations(sstats: np.ndarray, eta: np.ndarray, exp_elogbeta: np.ndarray) -> np.ndarray:
    """Fill ``exp_elogbeta`` (V × K) with exp(E[log β]) for λ = η + sstats (all word-major); returns the topic
    sums Σ_v λ_vk (float64), which are finite exactly when every λ is."""
    return _expectations_from_sums(sstats, eta, topic_sums(sstats, eta), exp_elogbeta)


def _expectations_from_sums(sstats: np.ndarray, eta: np.ndarray, sums: np.ndarray,
                            exp_elogbeta: np.ndarray) -> np.ndarray:
    psi_rows = _digamma_vector(sums).astype(sstats.dtype)
    parallel_for(_expectations_range, _word_blocks(sstats.shape[0]), sstats, eta, psi_rows, exp_elogbeta)
    return sums


def blend_and_expectations(sstats: np.ndarray, raw: np.ndarray, exp_elogbeta_used: np.ndarray, a: float, b: float,
                           eta: np.ndarray, exp_elogbeta: np.ndarray) -> np.ndarray:
    """:func:`blend_word_stats`, then :func:`topic_expectations` into ``exp_elogbeta``, with the blend and the topic sums
    in one pass over the words: the same numbers, one pass fewer over the K × V statistics. ``exp_elogbeta_used`` may be
    ``exp_elogbeta`` itself (every row is read by the first pass before the second rewrites it). Returns the topic
    sums, as :func:`topic_expectations` does."""
    partial = _partial_sums(sstats)
    parallel_for(_blend_and_sum_range, partial.shape[0], sstats, raw, exp_elogbeta_used, float(a), float(b), eta, partial)
    return _expectations_from_sums(sstats, eta, _sum_blocks(partial), exp_elogbeta)


def _word_blocks(V: int) -> int:
    return (int(V) + WORD_BLOCK - 1) // WORD_BLOCK


def blend_word_stats(sstats: np.ndarray, raw: np.ndarray, exp_elogbeta: np.ndarray, a: float, b: float) -> None:
    """sstats ← a · sstats + b · raw ⊙ exp_elogbeta (word-major), in parallel over blocks of words.

    ``raw`` holds a batch's word-major statistics before the multiplication by
    exp(E[log β]) (see :func:`distlda.kernels.estep.word_stats`),
    and ``exp_elogbeta`` the exp(E[log β]) the batch was computed with.
    """
    parallel_for(_blend_word_stats_range, _word_blocks(sstats.shape[0]), sstats, raw, exp_elogbeta, float(a), float(b))


def digamma_vector(x: np.ndarray) -> np.ndarray:
    """ψ of each element of a vector (float64 in, float64 out)."""
    return _digamma_vector(np.ascontiguousarray(x, dtype=np.float64))


def word_blocks(V: int) -> int:
    """The number of blocks of :data:`WORD_BLOCK` words that a vocabulary of ``V`` words has."""
    return _word_blocks(V)


def blend_blocks(sstats: np.ndarray, raw: np.ndarray, exp_elogbeta_used: np.ndarray, a: float, b: float,
                 eta: np.ndarray, block_sums: np.ndarray, lo: int, hi: int) -> None:
    """The first half of :func:`blend_and_expectations` for the words of blocks ``lo..hi`` only, on this thread:
    blend their rows and write their blocks' sums Σ λ into ``block_sums[lo:hi]`` (float64, blocks × K).

    The blocks are fixed by :data:`WORD_BLOCK`, not by who computes them, so processes that each blend a range of
    blocks and share their blocks' sums (:func:`sum_block_sums`) get the topic sums of a whole M-step bitwise."""
    _blend_and_sum_range(sstats, raw, exp_elogbeta_used, float(a), float(b), eta, block_sums, int(lo), int(hi))


def sum_block_sums(block_sums: np.ndarray) -> np.ndarray:
    """The topic sums Σ_v λ_vk from every block's sums, added in block order (as :func:`topic_sums` adds them)."""
    return _sum_blocks(np.ascontiguousarray(block_sums, dtype=np.float64))


def expectations_blocks(sstats: np.ndarray, eta: np.ndarray, sums: np.ndarray, exp_elogbeta: np.ndarray,
                        lo: int, hi: int) -> None:
    """The second half of :func:`blend_and_expectations` for the words of blocks ``lo..hi`` only: their rows of
    exp(E[log β]) from the topic sums of the whole vocabulary (:func:`sum_block_sums`)."""
    psi_rows = _digamma_vector(np.ascontiguousarray(sums, dtype=np.float64)).astype(sstats.dtype)
    _expectations_range(sstats, eta, psi_rows, exp_elogbeta, int(lo), int(hi))
