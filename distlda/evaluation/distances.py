"""Distances between topics: every row of one topic-word matrix against every row of another.

One home for the measures that models (``LdaModel.diff``, the difference
callbacks), evaluation (topic recovery) and the report (the topic map) use:

=================== =============================================================== ===========
name                value for rows ``a``, ``b``                                      range
=================== =============================================================== ===========
hellinger           ``sqrt(½ Σ (√a − √b)²)``                                         [0, 1]
kullback_leibler    ``Σ a log(a / b)`` after normalising both rows                   [0, ∞]
jensen_shannon      ``½ KL(a ‖ m) + ½ KL(b ‖ m)``, ``m = ½ (a + b)``, normalised     [0, log 2]
jaccard             ``1 − |A ∩ B| / |A ∪ B|`` of the supports ``A = {i: a_i > 0}``     [0, 1]
=================== =============================================================== ===========

Logarithms are natural. The Hellinger range holds for distributions; the
functions here do not renormalise for it (rows of ``get_topics()`` already sum
to 1), so that ``LdaModel.diff`` gives the numbers gensim users know.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DISTANCES", "check_same_width", "hellinger", "hellinger_matrix", "jaccard", "jensen_shannon",
    "js_distances", "kullback_leibler", "topic_distance_matrix",
]

DISTANCES = ("kullback_leibler", "hellinger", "jaccard", "jensen_shannon")
"""The names :func:`topic_distance_matrix` (and ``LdaModel.diff``) accept."""

# Below this Hellinger distance the expanded square cancels; such pairs are recomputed from differences.
_REFINE_BELOW = 1e-3
_REFINE_BLOCK_ELEMENTS = 1 << 22


def _pair(p: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)


def _row_normalised(x: np.ndarray) -> np.ndarray:
    return x / x.sum(1, keepdims=True)


def hellinger(p: Any, q: Any) -> np.ndarray:
    """Hellinger distances ``||√a − √b|| / √2`` between the rows of ``p`` and the rows of ``q``.

    Parameters
    ----------
    p, q : array-like, shapes (K1, V) and (K2, V)
        Non-negative rows (distributions, for the result to lie in [0, 1]).

    Returns
    -------
    numpy.ndarray of float64, shape (K1, K2)

    Notes
    -----
    One matrix product of square roots: ``½ (|√a|² + |√b|² − 2 √a·√b)``, clipped
    at 0 before the square root. Distances below about 1e-8 are lost to
    cancellation; :func:`hellinger_matrix` recomputes small ones exactly.
    """
    p, q = _pair(p, q)
    sp, sq = np.sqrt(p), np.sqrt(q)
    sq_dist = (sp * sp).sum(1)[:, None] + (sq * sq).sum(1)[None, :] - 2.0 * sp @ sq.T
    return np.sqrt(np.maximum(0.5 * sq_dist, 0.0))


def kullback_leibler(p: Any, q: Any) -> np.ndarray:
    """Kullback–Leibler divergences ``KL(a ‖ b)`` from each row of ``p`` to each row of ``q``.

    Rows are normalised to sum to 1 first. A pair where ``b`` is 0 somewhere
    ``a`` is not has divergence ``inf``; terms with ``a_i = 0`` contribute 0.

    Parameters
    ----------
    p, q : array-like, shapes (K1, V) and (K2, V)
        Non-negative rows with positive sums.

    Returns
    -------
    numpy.ndarray of float64, shape (K1, K2)
    """
    p, q = _pair(p, q)
    p, q = _row_normalised(p), _row_normalised(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0).sum(1)
    tiny = np.finfo(np.float64).tiny
    cross = p @ np.log(np.maximum(q, tiny)).T
    impossible = (p > 0).astype(np.float64) @ (q <= 0).astype(np.float64).T > 0
    cross[impossible] = -np.inf
    return plogp[:, None] - cross


def jensen_shannon(p: Any, q: Any) -> np.ndarray:
    """Jensen–Shannon divergences (in nats) between the rows of ``p`` and the rows of ``q``.

    Arguments and result as for :func:`kullback_leibler` (rows are normalised
    first). The divergence is symmetric, finite and at most ``log 2`` (rows with
    disjoint supports); its square root is a metric (see :func:`js_distances`).
    """
    p, q = _pair(p, q)
    p, q = _row_normalised(p), _row_normalised(q)
    out = np.empty((p.shape[0], q.shape[0]))
    # one row of p against all of q at a time: memory stays O(K2 * V)
    for i in range(p.shape[0]):
        m = 0.5 * (p[i][None, :] + q)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_p = np.where(p[i] > 0, p[i] * np.log(p[i] / m), 0.0).sum(1)
            kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum(1)
        out[i] = 0.5 * (kl_p + kl_q)
    return out


def jaccard(p: Any, q: Any) -> np.ndarray:
    """Jaccard distances between the supports (non-zero entries) of the rows of ``p`` and of ``q``.

    Parameters
    ----------
    p, q : array-like, shapes (K1, V) and (K2, V)
        Usually 0/1 membership rows (for topics: the top words, see
        :func:`distlda.evaluation.topwords.top_mask`).

    Returns
    -------
    numpy.ndarray of float64, shape (K1, K2)
        0 for two empty supports.
    """
    p, q = _pair(p, q)
    a = (p > 0).astype(np.float64)
    b = (q > 0).astype(np.float64)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, 1.0 - inter / union, 0.0)


_BY_NAME = {"kullback_leibler": kullback_leibler, "hellinger": hellinger, "jaccard": jaccard,
            "jensen_shannon": jensen_shannon}


def topic_distance_matrix(p: np.ndarray, q: np.ndarray, distance: str) -> np.ndarray:
    """Pairwise distances between the rows of two topic-word matrices, by name.

    Parameters
    ----------
    p, q : numpy.ndarray, shapes (K1, V) and (K2, V)
        Rows are distributions (for 'jaccard', 0/1 membership rows).
    distance : {'kullback_leibler', 'hellinger', 'jaccard', 'jensen_shannon'}

    Returns
    -------
    numpy.ndarray, shape (K1, K2)

    Raises
    ------
    ValueError
        When ``distance`` is not one of :data:`DISTANCES`.
    """
    if distance not in _BY_NAME:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    return _BY_NAME[distance](p, q)


def hellinger_matrix(p: Any, q: Any) -> np.ndarray:
    """Hellinger distances between distributions, checked, and precise also when they are tiny.

    ``H(a, b) = ||sqrt(a) - sqrt(b)||_2 / sqrt(2)``, which equals
    ``sqrt(1 - sum_i sqrt(a_i b_i))`` for distributions and lies in [0, 1].

    Parameters
    ----------
    p : array-like of shape (n_p, V) or (V,)
        Distributions (non-negative rows summing to 1; they are not renormalised).
    q : array-like of shape (n_q, V) or (V,)
        Distributions over the same ``V`` outcomes.

    Returns
    -------
    numpy.ndarray of float64, shape (n_p, n_q)
        A 1-D input counts as one row.

    Raises
    ------
    ValueError
        When ``p`` and ``q`` differ in their number of columns, are not 1-D or
        2-D, or hold negative or non-finite values.

    Notes
    -----
    The matrix is :func:`hellinger` (one matrix product of square roots), capped
    at 1. Distances below 1e-3, where the expanded square cancels, are
    recomputed from the differences of square roots, so that identical rows
    give exactly 0 and near-identical rows keep their relative precision.
    """
    p = _as_rows(p, "p")
    q = _as_rows(q, "q")
    check_same_width(p, q, "p", "q")
    dist = np.minimum(hellinger(p, q), 1.0)
    rows, cols = np.nonzero(dist < _REFINE_BELOW)
    if len(rows):
        sp, sq = np.sqrt(p), np.sqrt(q)
        step = max(1, _REFINE_BLOCK_ELEMENTS // max(p.shape[1], 1))
        for lo in range(0, len(rows), step):
            r, c = rows[lo:lo + step], cols[lo:lo + step]
            diff = sp[r] - sq[c]
            dist[r, c] = np.sqrt(np.einsum("ij,ij->i", diff, diff) / 2.0)
    return dist


def js_distances(topics: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distances (square roots of the divergences, in nats) between the rows of ``topics``.

    Parameters
    ----------
    topics : numpy.ndarray, shape (K, V)
        Topic-word distributions.

    Returns
    -------
    numpy.ndarray, shape (K, K)
        Symmetric, zero on the diagonal; the square root makes it a metric.
    """
    topics = np.asarray(topics, dtype=np.float64)
    k = topics.shape[0]
    if k * k * topics.shape[1] > 10**8:
        logger.info("computing the Jensen-Shannon distances of %d topics over %d words", k, topics.shape[1])
    div = np.zeros((k, k))
    # the divergence is symmetric: compute each pair once (half the work of the full matrix)
    for i in range(k - 1):
        div[i, i + 1:] = jensen_shannon(topics[i:i + 1], topics[i + 1:])[0]
    div = div + div.T
    return np.sqrt(np.maximum(div, 0.0))


def check_same_width(p: np.ndarray, q: np.ndarray, p_name: str, q_name: str) -> None:
    """Raise a ValueError naming both arguments when ``p`` and ``q`` differ in their number of columns."""
    if p.shape[1] != q.shape[1]:
        raise ValueError(
            f"{p_name} and {q_name} must be distributions over the same number of outcomes (one vocabulary), "
            f"got {p.shape[1]} ({p_name}) and {q.shape[1]} ({q_name}) columns"
        )


def _as_rows(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 1-D or 2-D array, got {arr.ndim} dimensions")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return arr
