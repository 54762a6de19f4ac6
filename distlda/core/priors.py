"""Dirichlet priors of LDA: initialisation from user input, and Newton updates ('auto').

``alpha`` (document-topic prior) accepts 'symmetric', 'asymmetric', 'auto', a
positive scalar, or a length-K array. ``eta`` (topic-word prior) accepts
``None``/'symmetric', 'auto', a positive scalar, a length-V array or a K × V
array. The update for 'auto' is one damped Newton step towards the maximum
likelihood Dirichlet given the mean log-proportions of a batch (Minka 2000;
Huang's linear-time Newton step for a Dirichlet).
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["init_alpha", "init_eta", "dirichlet_newton_step"]

_ALPHA_WORDS = ("symmetric", "asymmetric", "auto")
_ETA_WORDS = ("symmetric", "auto")


def _positive_array(value: Any, name: str, dtype: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a string, a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if not np.all(arr > 0):
        raise ValueError(f"{name} must be positive, got {value!r}")
    with np.errstate(over="ignore"):  # an overflow is refused just below, by name
        out = arr.astype(dtype)
    info = np.finfo(out.dtype)
    # in the model's dtype too: a float32 model would make 1e39 infinite, and 1e-39 a subnormal the kernels read as 0
    if not np.all(np.isfinite(out)) or not np.all(out >= info.tiny):
        raise ValueError(f"{name} must lie between {info.tiny:.4g} and {info.max:.4g} in the model's dtype "
                         f"({out.dtype.name}), got {value!r}")
    return out


def init_alpha(alpha: Any, num_topics: int, dtype: Any) -> tuple[np.ndarray, bool]:
    """The document-topic prior as a length-``num_topics`` array, and whether to learn it.

    Parameters
    ----------
    alpha : {'symmetric', 'asymmetric', 'auto'}, float or array-like
        'symmetric' and 'auto': 1/K each ('auto' then learns it);
        'asymmetric': proportional to 1/(k + √K), normalised to sum to 1;
        a positive number: that value for every topic; an array: one value per topic.
    num_topics : int
    dtype : numpy dtype

    Raises
    ------
    ValueError
        Unknown string, non-positive values, or an array of the wrong shape.
    """
    if isinstance(alpha, str):
        if alpha not in _ALPHA_WORDS:
            raise ValueError(f"alpha must be one of {_ALPHA_WORDS}, a positive number or an array; got {alpha!r}")
        if alpha == "asymmetric":
            raw = 1.0 / (np.arange(num_topics, dtype=np.float64) + np.sqrt(num_topics))
            return (raw / raw.sum()).astype(dtype), False
        return np.full(num_topics, 1.0 / num_topics, dtype=dtype), alpha == "auto"
    if alpha is None:
        raise TypeError("alpha must be a string, a positive number or an array, not None")
    arr = _positive_array(alpha, "alpha", dtype)
    if arr.ndim == 0:
        return np.full(num_topics, float(arr), dtype=dtype), False
    if arr.shape != (num_topics,):
        raise ValueError(f"alpha has shape {arr.shape}; expected ({num_topics},) (one value per topic)")
    return arr.copy(), False


def init_eta(eta: Any, num_topics: int, num_terms: int, dtype: Any) -> tuple[np.ndarray, bool]:
    """The topic-word prior as a length-V or K × V array, and whether to learn it.

    Parameters
    ----------
    eta : {None, 'symmetric', 'auto'}, float or array-like
        ``None``, 'symmetric' and 'auto': 1/K for every word ('auto' learns it);
        a positive number: that value for every word; an array of length V: one
        value per word; a K × V array: one value per topic and word.
    num_topics, num_terms : int
    dtype : numpy dtype

    Raises
    ------
    ValueError
        'asymmetric' (not defined for eta), unknown strings, non-positive values,
        or arrays of the wrong shape.
    """
    if eta is None or (isinstance(eta, str) and eta in _ETA_WORDS):
        return np.full(num_terms, 1.0 / num_topics, dtype=dtype), eta == "auto"
    if isinstance(eta, str):
        if eta == "asymmetric":
            raise ValueError("eta='asymmetric' is not defined; use 'symmetric', 'auto', a number or an array")
        raise ValueError(f"eta must be None, 'symmetric', 'auto', a positive number or an array; got {eta!r}")
    arr = _positive_array(eta, "eta", dtype)
    if arr.ndim == 0:
        return np.full(num_terms, float(arr), dtype=dtype), False
    if arr.shape == (num_terms,) or arr.shape == (num_topics, num_terms):
        return arr.copy(), False
    raise ValueError(
        f"eta has shape {arr.shape}; expected ({num_terms},) (one value per word) "
        f"or ({num_topics}, {num_terms}) (one per topic and word)"
    )


def dirichlet_newton_step(prior: np.ndarray, n: float, logphat: np.ndarray, rho: float) -> np.ndarray:
    """One damped Newton step of a Dirichlet prior towards its maximum likelihood value.

    Parameters
    ----------
    prior : numpy.ndarray, shape (M,)
        Current prior (positive).
    n : float
        Number of observations the statistics come from.
    logphat : numpy.ndarray, shape (M,)
        Mean of E[log p] over the observations.
    rho : float
        Step size in (0, 1].

    Returns
    -------
    numpy.ndarray
        The updated prior, or the unchanged prior (with a warning) when the
        step would make an entry non-positive.
    """
    from scipy import special as sp_special  # on first use: most runs learn no prior

    p = prior.astype(np.float64)
    total = p.sum()
    grad = n * (sp_special.psi(total) - sp_special.psi(p) + logphat)
    # Hessian = diag(q) + z·11ᵀ: invert it in linear time (Sherman–Morrison).
    z = n * sp_special.polygamma(1, total)
    q = -n * sp_special.polygamma(1, p)
    b = np.sum(grad / q) / (1.0 / z + np.sum(1.0 / q))
    step = (grad - b) / q
    updated = p - rho * step
    if np.all(updated > 0) and np.all(np.isfinite(updated)):
        return updated.astype(prior.dtype)
    logger.warning("skipping a Newton update of a Dirichlet prior: it would make an entry non-positive")
    return prior.copy()


def is_number(x: Any) -> bool:
    """True for real numbers other than bools."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
