"""numba kernels of the anchor start's exponentiated-gradient steps (see :func:`distlda.core.init.recover_topics`).

Every word's weights ``c`` (a row, on the simplex) are fitted to minimise ``½ c G cᵀ − c·t`` with ``G`` the
anchors' Gram matrix (K × K) and ``t`` the word's target row. One step of all words is one product with G (left to
BLAS, by the caller) between two kernels here, each one pass over the rows (float32), in parallel over words:

1. :func:`eg_trial` — the trial weights ``c · exp(−s (c G − t))``, renormalised (the exponent clipped to ±50);
2. :func:`eg_accept` — each word's error at its trial, and either the trial kept (weights, product and error) or
   the word's step ``s`` halved; and, in the same pass, the next step's trial.

numpy took ten passes over the m × K arrays for the same step, which at K = 100 was most of the start's time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from distlda.kernels.compile import KERNEL
from distlda.kernels.parallel import parallel_for
from distlda.kernels.special import fast_exp32

__all__ = ["eg_trial", "eg_accept", "half_errors"]

_CLIP = np.float32(50.0)

_KW = dict(KERNEL, fastmath={"contract", "reassoc", "arcp", "afn", "nsz"})
"""The kernels' options with fast-math that still knows NaN and infinity: a NaN error must fail ``<=``, so that a
trial gone NaN is refused like any worse one, as numpy's comparison refused it."""


@njit(**_KW)
def _trial_row(weights: np.ndarray, product: np.ndarray, target: np.ndarray, steps: np.ndarray,
               trial: np.ndarray, w: int) -> None:
    step = steps[w]
    total = 0.0
    for j in range(weights.shape[1]):
        x = -step * (product[w, j] - target[w, j])
        x = min(max(x, -_CLIP), _CLIP)
        v = weights[w, j] * fast_exp32(x)  # (a vectorisable exp: libm's would be a call per element)
        trial[w, j] = v
        total += v
    scale = 1.0 / total
    for j in range(weights.shape[1]):
        trial[w, j] *= scale


@njit(**_KW)
def _trial_range(weights: np.ndarray, product: np.ndarray, target: np.ndarray, steps: np.ndarray,
                 trial: np.ndarray, lo: int, hi: int) -> None:
    for w in range(lo, hi):
        _trial_row(weights, product, target, steps, trial, w)


@njit(**_KW)
def _half_error_row(weights: np.ndarray, product: np.ndarray, target: np.ndarray, w: int) -> float:
    quadratic, linear = 0.0, 0.0
    for j in range(weights.shape[1]):
        quadratic += weights[w, j] * product[w, j]
        linear += weights[w, j] * target[w, j]
    return 0.5 * quadratic - linear


@njit(**_KW)
def _errors_range(weights: np.ndarray, product: np.ndarray, target: np.ndarray, out: np.ndarray, lo: int,
                  hi: int) -> None:
    for w in range(lo, hi):
        out[w] = _half_error_row(weights, product, target, w)


@njit(**_KW)
def _accept_range(weights: np.ndarray, product: np.ndarray, error: np.ndarray, steps: np.ndarray,
                  trial: np.ndarray, trial_product: np.ndarray, target: np.ndarray, then_trial: bool, lo: int,
                  hi: int) -> None:
    for w in range(lo, hi):
        e = _half_error_row(trial, trial_product, target, w)
        if e <= error[w]:
            weights[w] = trial[w]
            product[w] = trial_product[w]
            error[w] = e
        else:
            steps[w] *= 0.5
        if then_trial:
            _trial_row(weights, product, target, steps, trial, w)


def _rows(*arrays: np.ndarray) -> int:
    """The rows of the kernels' arrays, after checking them: C-contiguous float32, (m × K) like the first, or (m,)."""
    m, k = arrays[0].shape
    for a in arrays:
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            raise ValueError(f"the exponentiated-gradient kernels take C-contiguous float32 arrays, got {a.dtype}"
                             f"{'' if a.flags.c_contiguous else ' (not C-contiguous)'}")
        if a.shape not in ((m, k), (m,)):
            raise ValueError(f"the exponentiated-gradient kernels need ({m}, {k}) or ({m},) arrays, got {a.shape}")
    return int(m)


def half_errors(weights: np.ndarray, product: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per word, ``½ c·p − c·t`` with ``p = c G`` (its squared error up to a constant), in the rows' dtype."""
    m = _rows(weights, product, target)
    out = np.empty(m, dtype=np.float32)
    parallel_for(_errors_range, m, weights, product, target, out)
    return out


def eg_trial(weights: np.ndarray, product: np.ndarray, target: np.ndarray, steps: np.ndarray,
             trial: np.ndarray) -> None:
    """trial[w] = weights[w] · exp(clip(−steps[w] (product[w] − target[w]), ±50)), normalised to sum to 1."""
    parallel_for(_trial_range, _rows(weights, product, target, steps, trial), weights, product, target, steps, trial)


def eg_accept(weights: np.ndarray, product: np.ndarray, error: np.ndarray, steps: np.ndarray, trial: np.ndarray,
              trial_product: np.ndarray, target: np.ndarray, then_trial: bool = False) -> None:
    """For every word: its trial kept when its error there is no higher (weights, product and error take the
    trial's), else its step halved; with ``then_trial``, the next trial written into ``trial`` as :func:`eg_trial`
    would, in the same pass (one kernel call per step: at small K the calls cost more than the arithmetic)."""
    m = _rows(weights, product, error, steps, trial, trial_product, target)
    parallel_for(_accept_range, m, weights, product, error, steps, trial, trial_product, target, bool(then_trial))
