"""How well learned topics recover known true topics.

Every true topic is paired with at most one learned topic so that the sum of
Hellinger distances of the pairs is as small as possible (the assignment
problem, solved exactly by :func:`scipy.optimize.linear_sum_assignment`). The
score is the mean distance of the pairs: 0 when every true topic is learned
exactly, 1 when no pair shares a single word. The distances themselves are
computed in :mod:`distlda.evaluation.distances`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from distlda.evaluation.distances import check_same_width, hellinger_matrix

__all__ = ["RecoveryResult", "hellinger_matrix", "topic_recovery"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryResult:
    """Outcome of :func:`topic_recovery`.

    Attributes
    ----------
    mean_hellinger : float
        Mean Hellinger distance of the matched pairs (0 = perfect recovery, 1 = nothing shared).
    matching : numpy.ndarray of int64, shape (n_pairs, 2)
        Pairs ``(true topic index, learned topic index)``, sorted by true index.
        ``n_pairs = min(K_true, K_learned)``.
    distances : numpy.ndarray of float64, shape (n_pairs,)
        Hellinger distance of each matched pair, in the order of ``matching``.
    distance_matrix : numpy.ndarray of float64, shape (K_true, K_learned)
        Hellinger distance between every true and every learned topic.
    """

    mean_hellinger: float
    matching: np.ndarray
    distances: np.ndarray
    distance_matrix: np.ndarray


def topic_recovery(true_topics: Any, learned_topics: Any) -> RecoveryResult:
    """Match learned topics to true topics and score the match by Hellinger distance.

    Parameters
    ----------
    true_topics : array-like of shape (K_true, V)
        The topics the corpus was drawn from (e.g. ``SyntheticCorpus.topics``).
    learned_topics : array-like of shape (K_learned, V)
        Topics of a trained model, e.g. ``LdaModel.get_topics()`` or the
        unnormalised variational parameters: every row is normalised to sum to 1.

    Returns
    -------
    RecoveryResult
        The optimal one-to-one matching of ``min(K_true, K_learned)`` pairs, their
        distances and their mean (the score; lower is better).

    Raises
    ------
    ValueError
        When the two arguments have different vocabulary sizes, are not 2-D, or
        contain negative or non-finite values or an all-zero row.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    >>> topic_recovery(true, true[::-1]).matching.tolist()
    [[0, 1], [1, 0]]
    """
    true = _normalised(true_topics, "true_topics")
    learned = _normalised(learned_topics, "learned_topics")
    check_same_width(true, learned, "true_topics", "learned_topics")
    if true.shape[0] != learned.shape[0]:
        logger.info(
            "matching %d true topics with %d learned topics: %d pairs",
            true.shape[0], learned.shape[0], min(true.shape[0], learned.shape[0]),
        )
    dist = hellinger_matrix(true, learned)
    rows, cols = linear_sum_assignment(dist)
    matching = np.stack([rows, cols], axis=1).astype(np.int64)
    distances = dist[rows, cols]
    return RecoveryResult(float(distances.mean()), matching, distances, dist)


def _normalised(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a 2-D array (topics x terms) with at least one row, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    sums = arr.sum(axis=1)
    empty = np.flatnonzero(sums <= 0)
    if len(empty):
        raise ValueError(f"{name} row {int(empty[0])} is all zeros and cannot be normalised")
    return arr / sums[:, None]
