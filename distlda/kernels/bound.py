"""The variational lower bound (ELBO) of LDA, as numba kernels.

For documents with fitted γ, the bound is the sum of

* per document: Σ_j c_j log Σ_k exp(E[log θ_dk] + E[log β_k,v_j])
  + Σ_k (α_k − γ_dk) E[log θ_dk] + log Γ(γ_dk) − log Γ(α_k)
  + log Γ(Σ α) − log Γ(Σ γ_d)  (scaled by the subsampling ratio), and
* per topic: Σ_v (η_kv − λ_kv) E[log β_kv] + log Γ(λ_kv) − log Γ(η_kv)
  + log Γ(Σ_v η_kv) − log Γ(Σ_v λ_kv).

The log-sum-exp over topics equals log(exp(E[log θ_d]) · exp(E[log β_·v])), which
the kernel evaluates in float64 from the same word-major matrix the E-step uses
(and exactly from λ where that matrix underflowed). Arrays are word-major, as in
:mod:`distlda.kernels.mstep`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from distlda.kernels.compile import KERNEL
from distlda.kernels.mstep import WORD_BLOCK, topic_log_sums, topic_sums
from distlda.kernels.parallel import parallel_for
from distlda.kernels.special import digamma

__all__ = ["document_bounds", "topic_bound"]

_KW = KERNEL


@njit(**_KW)
def _document_bounds_range(indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, exp_elogbeta: np.ndarray,
                           sstats: np.ndarray, eta: np.ndarray, psi_rows: np.ndarray, gamma: np.ndarray,
                           alpha: np.ndarray, out: np.ndarray, lo: int, hi: int) -> None:
    """out[d] = the document part of the bound for document d of a CSR chunk.

    ``exp_elogbeta`` is exp(E[log β]) (V × K); where it underflowed for a word (its dot
    product is tiny) the log-sum-exp is recomputed exactly from λ = η + sstats
    (word-major) and ``psi_rows`` = ψ(Σ_v λ_vk).
    """
    K = exp_elogbeta.shape[1]
    eta_cols = eta.shape[1]
    sum_alpha = 0.0
    lgamma_alpha = 0.0
    for k in range(K):
        sum_alpha += alpha[k]
        lgamma_alpha += math.lgamma(alpha[k])
    lg_sum_alpha = math.lgamma(sum_alpha)
    for d in range(lo, hi):
        elogt = np.empty(K, dtype=np.float64)
        eth = np.empty(K, dtype=np.float64)
        x = np.empty(K, dtype=np.float64)
        s = 0.0
        for k in range(K):
            s += gamma[d, k]
        c = digamma(s)
        prior = lg_sum_alpha - lgamma_alpha - math.lgamma(s)
        for k in range(K):
            g = gamma[d, k]
            e = digamma(g) - c
            elogt[k] = e
            eth[k] = math.exp(e)
            prior += (alpha[k] - g) * e + math.lgamma(g)
        lik = 0.0
        for j in range(indptr[d], indptr[d + 1]):
            v = ids[j]
            p = 0.0
            for k in range(K):
                p += eth[k] * exp_elogbeta[v, k]
            if p > 1e-30:
                lik += counts[j] * math.log(p)
            else:  # exp(E[log β]) underflowed for this word: exact log-sum-exp from λ
                m = -np.inf
                for k in range(K):
                    lam = sstats[v, k] + eta[v, k % eta_cols]
                    x[k] = elogt[k] + digamma(lam) - psi_rows[k]
                    m = max(m, x[k])
                t = 0.0
                for k in range(K):
                    t += math.exp(x[k] - m)
                lik += counts[j] * (m + math.log(t))
        out[d] = lik + prior


@njit(**_KW)
def _topic_blocks_range(sstats: np.ndarray, eta: np.ndarray, psi_rows: np.ndarray, partial: np.ndarray, lo: int,
                       hi: int) -> None:
    V, K = sstats.shape
    eta_cols = eta.shape[1]
    for blk in range(lo, hi):
        acc = 0.0
        for v in range(blk * WORD_BLOCK, min(V, (blk + 1) * WORD_BLOCK)):
            for k in range(K):
                e = eta[v, k % eta_cols]
                lam = sstats[v, k] + e
                acc += (e - lam) * (digamma(lam) - psi_rows[k]) + math.lgamma(lam) - math.lgamma(e)
        partial[blk] = acc


def document_bounds(indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, exp_elogbeta: np.ndarray,
                    sstats: np.ndarray, eta: np.ndarray, psi_rows: np.ndarray, gamma: np.ndarray,
                    alpha: np.ndarray, out: np.ndarray) -> None:
    """out[d] = the document part of the bound for document d of a CSR chunk, in parallel over documents.

    ``exp_elogbeta`` is exp(E[log β]) (V × K); where it underflowed for a word (its dot
    product is tiny) the log-sum-exp is recomputed exactly from λ = η + sstats
    (word-major) and ``psi_rows`` = ψ(Σ_v λ_vk).
    """
    parallel_for(_document_bounds_range, indptr.shape[0] - 1, indptr, ids, counts, exp_elogbeta, sstats, eta, psi_rows, gamma,
                 alpha, out)


def topic_bound(sstats: np.ndarray, eta: np.ndarray) -> float:
    """The topic part of the bound, for word-major sstats (V × K) and η ((V, 1) or (V, K))."""
    V, K = sstats.shape
    partial = np.empty((V + WORD_BLOCK - 1) // WORD_BLOCK, dtype=np.float64)
    parallel_for(_topic_blocks_range, partial.shape[0], sstats, eta, topic_log_sums(sstats, eta), partial)
    eta_sums = np.broadcast_to(eta.sum(axis=0, dtype=np.float64), (K,))
    return float(partial.sum() + np.sum([math.lgamma(e) for e in eta_sums])
                 - np.sum([math.lgamma(x) for x in topic_sums(sstats, eta)]))
