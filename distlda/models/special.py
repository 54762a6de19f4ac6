"""Special functions for the numba kernels, written to vectorise.

The E-step and M-step spend much of their time in ``exp(digamma(x) - c)`` over
short vectors. libm's ``exp``/``log`` are opaque calls that stop LLVM from
vectorising a loop (numba has no vector math library unless Intel's SVML is
installed), so this module supplies branch-free versions built from arithmetic
and a bit cast, which LLVM turns into AVX2/AVX-512 code:

* :func:`fast_exp` — Cody-Waite range reduction and a degree-11 polynomial,
  relative error below 1e-13 over the float64 range (the reduction is
  reassociated under fastmath, which costs a few bits at large |x|).
* :func:`digamma` — the recurrence ψ(x) = ψ(x + 6) − Σ 1/(x + i) and the
  asymptotic series at x + 6; relative error below 1e-12 for x > 0.
* :func:`exp_digamma_minus` — ``exp(ψ(x) − c)`` without a logarithm, by folding
  the ``log(x + 6)`` term of the series into a product.

Plain-Python callers should use :func:`digamma_array` and
:func:`dirichlet_expectation` (numpy/scipy), which are the reference the
kernels are tested against.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from scipy import special as sp_special

__all__ = [
    "fast_exp",
    "digamma",
    "exp_digamma_minus",
    "digamma_array",
    "dirichlet_expectation",
]


@intrinsic
def _i64_as_f64(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret the bits of an int64 as a float64 (an LLVM bitcast, free)."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split for Cody-Waite reduction
_LN2_LO = 1.9082149292705877e-10


@njit(fastmath=True, error_model="numpy", inline="always", cache=True)
def fast_exp(x: float) -> float:
    """exp(x) in float64, vectorisable; 0 below -708 (where exp underflows), and capped at exp(709)."""
    keep = 1.0 if x >= -708.0 else 0.0
    x = min(max(x, -708.0), 709.0)
    n = math.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI - n * _LN2_LO
    # Taylor polynomial of exp on |r| <= ln2/2, Horner form.
    p = 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return keep * p * _i64_as_f64((np.int64(n) + 1023) << 52)


@njit(fastmath=True, error_model="numpy", inline="always", cache=True)
def _shift_sum(x: float) -> float:
    """Σ_{i=0}^{5} 1/(x+i) with a single division (x is capped at 1e15, where the sum is < 1e-14)."""
    x = min(x, 1e15)
    a = x * (x + 1.0)
    b = (x + 2.0) * (x + 3.0)
    c = (x + 4.0) * (x + 5.0)
    num = (2.0 * x + 1.0) * b * c + (2.0 * x + 5.0) * a * c + (2.0 * x + 9.0) * a * b
    return num / (a * b * c)


@njit(fastmath=True, error_model="numpy", inline="always", cache=True)
def _series_tail(y: float) -> float:
    """ψ(y) − log(y) for y >= 6, by the asymptotic (Bernoulli) series."""
    inv = 1.0 / y
    t = inv * inv
    s = 3617.0 / 8160.0
    s = s * t - 1.0 / 12.0
    s = s * t + 691.0 / 32760.0
    s = s * t - 1.0 / 132.0
    s = s * t + 1.0 / 240.0
    s = s * t - 1.0 / 252.0
    s = s * t + 1.0 / 120.0
    s = s * t - 1.0 / 12.0
    return s * t - 0.5 * inv


@njit(fastmath=True, error_model="numpy", inline="always", cache=True)
def digamma(x: float) -> float:
    """ψ(x) for x > 0 in float64 (uses one logarithm)."""
    y = x + 6.0
    return math.log(y) + _series_tail(y) - _shift_sum(x)


@njit(fastmath=True, error_model="numpy", inline="always", cache=True)
def exp_digamma_minus(x: float, c: float) -> float:
    """exp(ψ(x) − c) for x > 0, with no logarithm: (x+6)·exp(tail(x+6) − shift(x) − c)."""
    y = x + 6.0
    return y * fast_exp(_series_tail(y) - _shift_sum(x) - c)


def digamma_array(x: np.ndarray) -> np.ndarray:
    """ψ of an array, elementwise, in the array's float type (scipy; not for kernels)."""
    x = np.asarray(x)
    out = sp_special.psi(x)
    return out.astype(x.dtype, copy=False) if x.dtype.kind == "f" else out


def dirichlet_expectation(alpha: np.ndarray) -> np.ndarray:
    """E[log θ] for θ ~ Dir(alpha), along the last axis.

    For a vector, ``ψ(alpha) − ψ(Σ alpha)``; for a matrix, the same row by row.
    The result has the dtype of ``alpha``.
    """
    alpha = np.asarray(alpha)
    if alpha.ndim == 1:
        result = sp_special.psi(alpha) - sp_special.psi(np.sum(alpha))
    else:
        result = sp_special.psi(alpha) - sp_special.psi(np.sum(alpha, axis=1))[:, np.newaxis]
    return result.astype(alpha.dtype, copy=False)
