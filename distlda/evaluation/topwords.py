"""The most probable words of topics: one ranking used by every reader of a topic-word matrix.

Models, callbacks, the report and the command line all show or compare "the top
``n`` words" of a topic; they rank with :func:`top_ids` so that they agree on
which words those are and in which order, ties included.
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_ids", "top_mask"]


def top_ids(weights: np.ndarray, topn: int | None) -> np.ndarray:
    """Indices of the ``topn`` largest entries of a row (or of each row), largest first.

    Parameters
    ----------
    weights : numpy.ndarray, shape (V,) or (K, V)
        A topic's word weights, or one topic per row.
    topn : int or None
        How many indices per row; None (or ``V`` or more) ranks the whole row,
        0 or less gives none.

    Returns
    -------
    numpy.ndarray of int64, shape (n,) or (K, n)
        ``n = min(topn, V)``. Equal weights come in increasing index order. When
        ties straddle the cut at ``topn``, which of the tied indices make the cut
        is decided by :func:`numpy.argpartition` (as in gensim's ``argsort``).

    Examples
    --------
    >>> top_ids(np.array([0.1, 0.4, 0.1, 0.4]), 3).tolist()
    [1, 3, 0]
    """
    weights = np.asarray(weights)
    size = weights.shape[-1]
    if topn is None or topn >= size:
        return np.argsort(-weights, axis=-1, kind="stable")
    if topn <= 0:
        return np.zeros(weights.shape[:-1] + (0,), dtype=np.int64)
    # only the candidates are sorted: O(V) selection, then O(n log n) ordering by (weight desc, index asc)
    part = np.argpartition(-weights, topn - 1, axis=-1)[..., :topn]
    chosen = np.take_along_axis(weights, part, axis=-1)
    return np.take_along_axis(part, np.lexsort((part, -chosen), axis=-1), axis=-1)


def top_mask(weights: np.ndarray, topn: int | None) -> np.ndarray:
    """0/1 rows marking each row's :func:`top_ids` (what the Jaccard distance of topics compares).

    Parameters
    ----------
    weights : numpy.ndarray, shape (K, V)
    topn : int or None
        As in :func:`top_ids`.

    Returns
    -------
    numpy.ndarray of float64, shape (K, V)
    """
    weights = np.asarray(weights)
    mask = np.zeros(weights.shape, dtype=np.float64)
    np.put_along_axis(mask, top_ids(weights, topn), 1.0, axis=-1)
    return mask
