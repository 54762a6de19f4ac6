"""One evaluator for every topic model: the held-out per-word bound given topics and alpha.

Topic models differ in what they learn (a variational λ, a Gibbs sample's
counts, scikit-learn's pseudo-counts), but each yields topic-word distributions
β (K × V) and a document-topic prior α. :func:`heldout_per_word_bound` fits a
variational Dirichlet γ to every held-out document with β fixed, and returns

    (1 / N) Σ_d [ Σ_j c_dj log Σ_k exp(E[log θ_dk]) β_k,v_j  −  KL(q(θ_d | γ_d) ‖ p(θ_d | α)) ]

where N is the number of held-out words: the document part of the LDA bound,
with E[log β] replaced by log β. Higher is better; exp(−bound) is a perplexity.
Because every system is scored by this same code, the numbers are comparable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distlda.corpora.csr import iter_chunks, validate_chunk
from distlda.kernels.bound import document_bounds
from distlda.core.estep import fit_gamma
from distlda.kernels.rng import content_keys

__all__ = ["heldout_per_word_bound"]

BETA_FLOOR = 1e-12
"""Topic-word probabilities are floored at this value (then renormalised), so models
that put exact zeros on a word can still be scored."""


def heldout_per_word_bound(topics: np.ndarray, alpha: Any, corpus: Any, iterations: int = 200,
                           gamma_threshold: float = 1e-5, seed: int = 0, chunksize: int = 10_000) -> float:
    """Per-word held-out bound of ``corpus`` under fixed ``topics`` and prior ``alpha``.

    Parameters
    ----------
    topics : numpy.ndarray, shape (K, V)
        Non-negative topic-word weights (rows are normalised here).
    alpha : float or array of K floats
        Document-topic Dirichlet prior.
    corpus : anything :func:`distlda.corpora.csr.iter_chunks` accepts
        Held-out documents with term ids below V.
    iterations, gamma_threshold : int, float
        Fixed-point iterations per document and their convergence threshold.
    seed : int
        Seed of the γ initialisation.

    Returns
    -------
    float
        The bound divided by the number of words (nats per word).
    """
    beta = np.asarray(topics, dtype=np.float64)
    if beta.ndim != 2 or beta.shape[0] < 1:
        raise ValueError(f"topics must be a (num_topics, num_terms) array, got shape {beta.shape}")
    if not np.all(np.isfinite(beta)) or np.any(beta < 0):
        raise ValueError("topics must be finite and non-negative")
    K, V = beta.shape
    alpha_arr = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (K,)).copy()
    if np.any(alpha_arr <= 0):
        raise ValueError("alpha must be positive")
    beta = beta / beta.sum(axis=1, keepdims=True)
    beta = np.maximum(beta, BETA_FLOOR)
    beta /= beta.sum(axis=1, keepdims=True)
    exp_elogbeta = np.ascontiguousarray(beta.T)
    # The exact fallback of document_bounds is never taken: with the floor, every word's
    # probability under θ is at least BETA_FLOOR. Pass log-space stand-ins of the right shapes.
    dummy_stats = np.zeros((V, K))
    dummy_eta = np.ones((V, 1))
    dummy_psi = np.zeros(K)
    total = 0.0
    words = 0.0
    for chunk in iter_chunks(corpus, chunksize):
        validate_chunk(chunk, V)
        chunk = chunk.for_kernels(np.float64)
        keys = content_keys(seed, chunk.indptr, chunk.ids, chunk.counts)
        gamma, _ = fit_gamma(chunk, exp_elogbeta, alpha_arr, keys, iterations, gamma_threshold)
        out = np.empty(chunk.n_docs, dtype=np.float64)
        document_bounds(chunk.indptr, chunk.ids, chunk.counts, exp_elogbeta, dummy_stats, dummy_eta, dummy_psi, gamma,
                        alpha_arr, out)
        total += float(out.sum())
        words += chunk.num_words()
    if words == 0:
        raise ValueError("the held-out corpus has no words")
    return total / words
