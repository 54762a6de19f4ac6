"""The M-step as a pure function of arrays, shared by the model and by the workers' replicas.

A cluster's workers keep a replica of the topic-word statistics and apply every
M-step themselves, from the batch's γ (which they already exchange) and a small
:class:`MStepPlan` (learning rate and blend weights). Because the client and the
workers run this same function on the same inputs, their exp(E[log β]) stay
identical, and only γ — not the K × V matrix — crosses the network per M-step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from distlda.core.estep import BatchAccumulator, BatchStats, EStepParams, join_gammas
from distlda.corpora.csr import CsrChunk, concat_chunks
from distlda.kernels.mstep import blend_and_expectations, blend_word_stats, topic_expectations
from distlda.core.priors import dirichlet_newton_step
from distlda.kernels.special import dirichlet_expectation

__all__ = ["ModelArrays", "MStepPlan", "blend_coefficients", "plan_mstep", "apply_mstep", "alpha_step", "eta_step",
           "check_learnable_eta", "check_finite_statistics", "NonFiniteStatistics", "eta_wm", "replay_mstep"]


def blend_coefficients(rhot: float, own_docs: float, other_docs: float,
                       targetsize: float) -> tuple[float, float]:
    """Coefficients (a, b) of the blend ``sstats ← a·sstats + b·other`` (online VB M-step).

    The model's statistics and the batch's are each stretched to ``targetsize``
    documents, then mixed with weights ``1 − rhot`` and ``rhot``.
    """
    own_scale = 1.0 if own_docs == 0 or targetsize == own_docs else targetsize / own_docs
    other_scale = 1.0 if other_docs == 0 or targetsize == other_docs else targetsize / other_docs
    return (1.0 - rhot) * own_scale, rhot * other_scale


@dataclass
class ModelArrays:
    """What an M-step reads and writes.

    Attributes
    ----------
    sstats_wm : numpy.ndarray, shape (V, K)
        Statistics, word-major; updated in place.
    eta : numpy.ndarray, shape (V,) or (K, V)
        Topic-word prior (replaced when it is learned).
    alpha : numpy.ndarray, shape (K,)
        Document-topic prior (replaced when it is learned).
    exp_elogbeta : numpy.ndarray, shape (V, K)
        exp(E[log β]), word-major; recomputed in place.
    """

    sstats_wm: np.ndarray
    eta: np.ndarray
    alpha: np.ndarray
    exp_elogbeta: np.ndarray


@dataclass(frozen=True)
class MStepPlan:
    """The scalars of one M-step: learning rate, blend weights, and which priors to learn."""

    rho: float
    a: float
    b: float
    optimize_alpha: bool
    optimize_eta: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MStepPlan":
        return cls(float(data["rho"]), float(data["a"]), float(data["b"]), bool(data["optimize_alpha"]),
                   bool(data["optimize_eta"]))


def plan_mstep(rho: float, model_docs: float, batch_docs: float, optimize_alpha: bool,
               optimize_eta: bool) -> MStepPlan:
    """The plan of an M-step that blends a batch of ``batch_docs`` into a model standing for ``model_docs``."""
    a, b = blend_coefficients(rho, model_docs, batch_docs, model_docs)
    return MStepPlan(float(rho), float(a), float(b), bool(optimize_alpha), bool(optimize_eta))


def eta_wm(eta: np.ndarray, dtype: Any) -> np.ndarray:
    """η word-major, as the kernels take it: (V, 1) when shared by all topics, else (V, K)."""
    return np.ascontiguousarray(eta.reshape(-1, 1) if eta.ndim == 1 else eta.T, dtype=dtype)


def apply_mstep(arrays: ModelArrays, batch: BatchStats, exp_elogbeta_used: np.ndarray, plan: MStepPlan) -> None:
    """Blend ``batch`` into ``arrays`` (computed with exp(E[log β]) ``exp_elogbeta_used``), learn the priors, and
    recompute ``arrays.exp_elogbeta``. ``exp_elogbeta_used`` may be ``arrays.exp_elogbeta`` itself: it is read before it is rewritten."""
    if plan.optimize_alpha and batch.elogtheta_sum is not None:
        arrays.alpha = alpha_step(arrays.alpha, batch.numdocs, batch.elogtheta_sum, plan.rho)
    if not plan.optimize_eta:
        sums = blend_and_expectations(arrays.sstats_wm, batch.raw, exp_elogbeta_used, plan.a, plan.b,
                                      eta_wm(arrays.eta, arrays.sstats_wm.dtype), arrays.exp_elogbeta)
    else:
        check_learnable_eta(arrays.eta)
        blend_word_stats(arrays.sstats_wm, batch.raw, exp_elogbeta_used, plan.a, plan.b)
        arrays.eta = eta_step(arrays.eta, (arrays.sstats_wm + arrays.eta[:, None]).T, plan.rho)
        sums = topic_expectations(arrays.sstats_wm, eta_wm(arrays.eta, arrays.sstats_wm.dtype), arrays.exp_elogbeta)
    check_finite_statistics(sums, arrays.alpha)


class NonFiniteStatistics(ValueError):
    """An M-step made a statistic or a prior infinite or NaN: counts too large for the model's dtype."""


def check_finite_statistics(topic_sums: np.ndarray, alpha: np.ndarray) -> None:
    """Raise :class:`NonFiniteStatistics` unless the topic sums Σ_v λ_vk (finite exactly when every λ is) and
    alpha are finite. A ValueError: training treats it as bad input and restores the model."""
    bad = np.flatnonzero(~np.isfinite(topic_sums))
    if bad.size or not np.all(np.isfinite(alpha)):
        where = f"topic {int(bad[0])}" if bad.size else "alpha"
        raise NonFiniteStatistics(f"the M-step made the statistics of {where} infinite or NaN: the counts are too "
                                  f"large for {alpha.dtype} arithmetic (train with "
                                  "dtype=numpy.float64, or scale the counts down)")


def alpha_step(alpha: np.ndarray, numdocs: int, elogtheta_sum: np.ndarray, rho: float) -> np.ndarray:
    """Learned alpha after a batch of ``numdocs`` documents whose Σ_d E[log θ_d] is ``elogtheta_sum``: one damped
    Newton step (``alpha`` itself when the batch is empty)."""
    if numdocs <= 0:
        return alpha
    return dirichlet_newton_step(alpha, float(numdocs), elogtheta_sum / numdocs, rho)


def check_learnable_eta(eta: np.ndarray) -> None:
    """Raise ValueError unless eta has one value per word, the only shape 'auto' can learn."""
    if eta.ndim != 1:
        raise ValueError("eta can only be learned when it is one value per word (shape (V,))")


def eta_step(eta: np.ndarray, lam: np.ndarray, rho: float) -> np.ndarray:
    """Learned eta (shape (V,)) given the topics' λ (K × V): one damped Newton step, every topic an observation."""
    check_learnable_eta(eta)
    lam = np.asarray(lam, dtype=np.float64)
    logphat = dirichlet_expectation(lam).sum(axis=0) / lam.shape[0]
    return dirichlet_newton_step(eta, float(lam.shape[0]), logphat, rho)


def replay_mstep(arrays: ModelArrays, parts: Iterable[list[tuple[CsrChunk, np.ndarray]]], plan: MStepPlan) -> None:
    """Rebuild a batch's statistics from its documents and their γ, and apply its M-step to ``arrays``: what a
    worker's replica does with each M-step the client made.

    ``parts`` holds, for each chunk the client submitted, the pieces (jobs) it was split into, in document order.
    Each chunk is joined and reduced whole, as the client reduced it, so the sums round the same way and the
    replica stays bitwise equal to the client's model.
    """
    acc = BatchAccumulator(EStepParams(arrays.exp_elogbeta, arrays.alpha, 1, 0.0, 0, plan.optimize_alpha))
    for pieces in parts:
        chunk = concat_chunks([piece for piece, _ in pieces])
        acc.add(chunk, join_gammas([gamma for _, gamma in pieces], chunk.n_docs, arrays.alpha.shape[0]))
    apply_mstep(arrays, acc.stats, arrays.exp_elogbeta, plan)
