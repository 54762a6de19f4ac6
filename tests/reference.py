"""Plain numpy implementations of the LDA formulas, in float64, used as the tests' reference.

They follow the equations of Hoffman, Blei & Bach (2010) directly, one document
at a time, with no attempt at speed.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, psi

EPS = np.finfo(np.float64).eps  # added to each normaliser, as the library (and gensim) do


def dirichlet_expectation(a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        return psi(a) - psi(a.sum())
    return psi(a) - psi(a.sum(axis=1))[:, None]


def infer_document(ids, counts, gamma0, alpha, exp_elogbeta, iterations, threshold):
    """Fixed-point iteration for one document; returns (gamma, sstats columns for ids)."""
    ids = np.asarray(ids, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.float64)
    if len(ids) == 0:
        return alpha.astype(np.float64).copy(), np.zeros((len(alpha), 0))
    gamma = gamma0.astype(np.float64).copy()
    eth = np.exp(dirichlet_expectation(gamma))
    eb = exp_elogbeta[:, ids].astype(np.float64)
    phinorm = eth @ eb + EPS
    for _ in range(iterations):
        last = gamma
        gamma = alpha + eth * ((counts / phinorm) @ eb.T)
        eth = np.exp(dirichlet_expectation(gamma))
        phinorm = eth @ eb + EPS
        if np.mean(np.abs(gamma - last)) < threshold:
            break
    return gamma, np.outer(eth, counts / phinorm) * eb


def estep(docs, gamma0, alpha, exp_elogbeta, iterations, threshold):
    """Gamma of every document and the summed sstats (K x V)."""
    K, V = exp_elogbeta.shape
    gammas = np.empty((len(docs), K))
    sstats = np.zeros((K, V))
    for d, doc in enumerate(docs):
        ids = [i for i, _ in doc]
        cts = [c for _, c in doc]
        g, cols = infer_document(ids, cts, gamma0[d], alpha, exp_elogbeta, iterations, threshold)
        gammas[d] = g
        for j, i in enumerate(ids):
            sstats[:, i] += cols[:, j]
    return gammas, sstats


def bound(docs, gamma, alpha, lam, eta, subsample_ratio=1.0):
    """Variational lower bound of the documents under q(theta | gamma) q(beta | lambda)."""
    elogbeta = dirichlet_expectation(lam)
    score = 0.0
    for d, doc in enumerate(docs):
        g = gamma[d]
        elogt = dirichlet_expectation(g)
        for i, c in doc:
            x = elogt + elogbeta[:, i]
            m = x.max()
            score += c * (m + np.log(np.exp(x - m).sum()))
        score += np.sum((alpha - g) * elogt) + np.sum(gammaln(g) - gammaln(alpha))
        score += gammaln(alpha.sum()) - gammaln(g.sum())
    score *= subsample_ratio
    eta2 = np.broadcast_to(eta, lam.shape)
    score += np.sum((eta2 - lam) * elogbeta) + np.sum(gammaln(lam) - gammaln(eta2))
    score += np.sum(gammaln(eta2.sum(axis=1)) - gammaln(lam.sum(axis=1)))
    return score


def newton_dirichlet_full(prior, n, logphat):
    """A full (dense Hessian) Newton step for the Dirichlet likelihood, for checking the fast one."""
    from scipy.special import polygamma

    grad = n * (psi(prior.sum()) - psi(prior) + logphat)
    hess = n * (polygamma(1, prior.sum()) * np.ones((len(prior), len(prior))) - np.diag(polygamma(1, prior)))
    return prior - np.linalg.solve(hess, grad)
