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
from distlda.kernels.lazy import lazy_blend, refresh_rows, stale_rows
from distlda.kernels.mstep import (blend_and_expectations, blend_word_stats, digamma_vector, topic_expectations,
                                   topic_sums)
from distlda.core.priors import dirichlet_newton_step
from distlda.kernels.special import dirichlet_expectation

__all__ = ["MSTEP_METHODS", "check_mstep", "ModelArrays", "MStepPlan", "blend_coefficients", "plan_mstep", "apply_mstep", "alpha_step", "eta_step",
           "check_learnable_eta", "check_finite_statistics", "NonFiniteStatistics", "eta_wm", "replay_mstep",
           "LazyTopics", "replay_lazy_mstep", "CANONICAL_EVERY"]


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
    lazy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MStepPlan":
        return cls(float(data["rho"]), float(data["a"]), float(data["b"]), bool(data["optimize_alpha"]),
                   bool(data["optimize_eta"]), bool(data.get("lazy", False)))


def plan_mstep(rho: float, model_docs: float, batch_docs: float, optimize_alpha: bool,
               optimize_eta: bool, lazy: bool = False) -> MStepPlan:
    """The plan of an M-step that blends a batch of ``batch_docs`` into a model standing for ``model_docs``;
    ``lazy`` asks for :class:`LazyTopics` (ignored when eta is learned, which needs every row each step)."""
    a, b = blend_coefficients(rho, model_docs, batch_docs, model_docs)
    return MStepPlan(float(rho), float(a), float(b), bool(optimize_alpha), bool(optimize_eta),
                     bool(lazy) and not optimize_eta)


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
    if plan.lazy:
        raise ValueError("a lazy M-step is replayed by replay_lazy_mstep on LazyTopics, not on plain ModelArrays")
    apply_mstep(arrays, _reduce_parts(arrays, parts, plan, None), arrays.exp_elogbeta, plan)


def _reduce_parts(arrays: ModelArrays, parts: Iterable[list[tuple[CsrChunk, np.ndarray]]], plan: MStepPlan,
                  lazy: "LazyTopics | None") -> BatchStats:
    """A batch's statistics from its chunks' pieces and their γ, each chunk joined and reduced whole (sparsely,
    its rows brought up to date first, when ``lazy`` is given)."""
    acc = BatchAccumulator(EStepParams(arrays.exp_elogbeta, arrays.alpha, 1, 0.0, 0, plan.optimize_alpha),
                           sparse=lazy is not None)
    for pieces in parts:
        chunk = concat_chunks([piece for piece, _ in pieces])
        if lazy is not None:
            lazy.refresh(chunk.ids)
        acc.add(chunk, join_gammas([gamma for _, gamma in pieces], chunk.n_docs, arrays.alpha.shape[0]))
    return acc.finish()


def replay_lazy_mstep(lazy: "LazyTopics", parts: Iterable[list[tuple[CsrChunk, np.ndarray]]],
                      plan: MStepPlan) -> None:
    """:func:`replay_mstep` for a replica kept by :class:`LazyTopics`: the same chunks reduced sparsely, each after
    its rows are brought up to date, as :class:`~distlda.core.estep.LocalEStep` does, then the lazy M-step."""
    lazy.apply(_reduce_parts(lazy.arrays, parts, plan, lazy), plan)


CANONICAL_EVERY = 20
"""Every this many M-steps (counted from the start of a training run) :class:`LazyTopics` brings its arrays to the
canonical form (statistics unscaled, every exp(E[log β]) row recomputed), the form a model read from the arrays
starts in: a cluster's bases must be taken at these versions (``cluster.client.REBASE_EVERY`` a multiple of it)
for a replica started from one to continue bitwise like the others."""

_MIN_SCALE = 2.0 ** -40
"""The global scale is folded into the rows before it falls below this (before s̃ = sstats / σ can overflow)."""


MSTEP_METHODS = ("dense", "lazy")
"""Values of LdaModel's ``mstep``: 'dense' (every row of the statistics and of exp(E[log β]) every M-step, the
default) or 'lazy' (:class:`LazyTopics`: only the rows a mini-batch touches; for large vocabularies)."""


def check_mstep(name: str, value: Any) -> str:
    """The validated ``mstep`` parameter (one of :data:`MSTEP_METHODS`)."""
    if not isinstance(value, str) or value not in MSTEP_METHODS:
        raise ValueError(f"{name} must be one of {', '.join(repr(m) for m in MSTEP_METHODS)}, got {value!r}")
    return value


class LazyTopics:
    """The lazy, sparse M-step: statistics, topic sums and exp(E[log β]) kept so that an M-step costs
    O(K × words the batch touches), not O(K × V).

    ``arrays.sstats_wm`` holds s̃ with ``sstats = scale · s̃``: an M-step ``sstats ← a·sstats + b·raw⊙exp(E[log β])``
    is ``scale ← a · scale`` plus ``s̃_v += (b / scale) · raw_v ⊙ exp(E[log β])_v`` on the touched rows. The topic
    sums Σ_v s̃_v are kept in float64 from the values stored; a row of ``arrays.exp_elogbeta`` is recomputed from
    the current sums only when :meth:`refresh` asks for it (a chunk that uses the word is about to be fitted or
    reduced), tracked by a per-row stamp. Every :data:`CANONICAL_EVERY` M-steps, and at :meth:`finish`, the arrays
    are made canonical (see :meth:`canonicalise`). Every step is a deterministic function of the canonical arrays
    and the plans since, so a local run and every replica of a cluster stay bitwise equal.

    Parameters
    ----------
    arrays : ModelArrays
        Canonical arrays (``sstats_wm`` the statistics, ``exp_elogbeta`` from :func:`topic_expectations`), taken
        over, not copied. eta must stay fixed (a learned eta needs the dense M-step).
    version : int
        The M-steps of the run the arrays stand at (a replica started from a base mid-run: the base's version).
    """

    def __init__(self, arrays: ModelArrays, version: int = 0) -> None:
        self.arrays = arrays
        V, K = arrays.sstats_wm.shape
        self.version = int(version)
        self._eta_wm = eta_wm(arrays.eta, arrays.sstats_wm.dtype)
        self._eta_sums = (np.full(K, arrays.eta.astype(np.float64).sum()) if arrays.eta.ndim == 1
                          else arrays.eta.astype(np.float64).sum(axis=1))
        self._epoch = 0
        self._stamp = np.zeros(V, dtype=np.int64)  # the epoch each exp(E[log β]) row was computed in
        self._psi = np.zeros(K, dtype=arrays.sstats_wm.dtype)
        self.scale = 1.0
        self._fold_scale()
        self._view: tuple[int, np.ndarray, np.ndarray] | None = None

    def _fold_scale(self) -> None:
        """sstats = scale · s̃ into the rows themselves, and the topic sums recomputed from them (O(V × K))."""
        s = self.arrays.sstats_wm
        if self.scale != 1.0:
            np.multiply(s, s.dtype.type(self.scale), out=s)
            self.scale = 1.0
        self._sums = topic_sums(s, np.zeros((s.shape[0], 1), dtype=s.dtype))

    def canonicalise(self) -> None:
        """Fold the scale into the rows and recompute every exp(E[log β]) row from dense topic sums: the arrays then
        hold what :func:`topic_expectations` gives for the statistics, as in a replica started from them."""
        self._fold_scale()
        topic_expectations(self.arrays.sstats_wm, self._eta_wm, self.arrays.exp_elogbeta)
        self._epoch += 1
        self._stamp[:] = self._epoch
        self._view = None

    def refresh(self, ids: np.ndarray) -> None:
        """Bring the exp(E[log β]) rows of the words ``ids`` (repeats allowed) up to date."""
        rows = stale_rows(np.asarray(ids), self._stamp, self._epoch)
        if rows.size:
            s = self.arrays.sstats_wm
            refresh_rows(rows, s, self._eta_wm, np.array([self.scale], dtype=s.dtype), self._psi,
                         self.arrays.exp_elogbeta)

    def apply(self, batch: BatchStats, plan: MStepPlan) -> None:
        """The M-step of ``batch`` (a sparse accumulator's result, its rows refreshed before it was reduced)."""
        arrays = self.arrays
        s = arrays.sstats_wm
        if batch.rows is None or batch.raw is None:
            raise ValueError("a lazy M-step needs sparse batch statistics (BatchAccumulator(sparse=True))")
        if plan.optimize_eta:
            raise ValueError("a learned eta changes every row each M-step: use the dense M-step")
        if np.any(self._stamp[batch.rows] != self._epoch):
            raise RuntimeError("the batch was reduced with exp(E[log β]) rows that were not brought up to date")
        used = arrays.exp_elogbeta[batch.rows]  # before any row is recomputed
        if plan.optimize_alpha and batch.elogtheta_sum is not None:
            arrays.alpha = alpha_step(arrays.alpha, batch.numdocs, batch.elogtheta_sum, plan.rho)
        scale = plan.a * self.scale
        if scale < _MIN_SCALE:  # (a = 0 when rho = 1: every row is forgotten)
            self._fold_scale()
            scale = plan.a
            if scale < _MIN_SCALE:
                np.multiply(s, s.dtype.type(plan.a), out=s)
                self._sums = topic_sums(s, np.zeros((s.shape[0], 1), dtype=s.dtype))
                scale = 1.0
        lazy_blend(s, batch.rows, batch.raw, used, plan.b / scale, self._sums)
        self.scale = scale
        total = scale * self._sums + self._eta_sums
        check_finite_statistics(total, arrays.alpha)
        self._psi = digamma_vector(total).astype(s.dtype)
        self._epoch += 1
        self.version += 1
        self._view = None
        if self.version % CANONICAL_EVERY == 0:
            self.canonicalise()

    def materialised(self) -> tuple[np.ndarray, np.ndarray]:
        """The statistics and exp(E[log β]) (V × K) as canonical arrays would hold them now: copies, computed once
        per M-step; reading them leaves the lazy state (and so the model's later M-steps) untouched."""
        if self._view is None or self._view[0] != self.version:
            s = self.arrays.sstats_wm
            sstats = np.multiply(s, s.dtype.type(self.scale))
            exp_elogbeta = np.empty_like(sstats)
            topic_expectations(sstats, self._eta_wm, exp_elogbeta)
            self._view = (self.version, sstats, exp_elogbeta)
        return self._view[1], self._view[2]

    def finish(self) -> ModelArrays:
        """Make the arrays canonical and hand them back (the end of a training run)."""
        self.canonicalise()
        return self.arrays
