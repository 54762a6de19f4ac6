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
* :func:`exp_digamma_minus_t` — the same, computed in the type of ``x``: float32
  arguments get an 8-wide float32 version (relative error about 1e-6), which
  halves the cost of the E-step's inner update for float32 models.
* :func:`exp_digamma_minus_rows` — the same over a whole vector, written in
  explicit LLVM vectors (8 or 16 lanes: see :func:`distlda.kernels.vectorir.vector_bits`):
  the E-step evaluates it for every topic of a document at every iteration. In
  float32 it is exp(ψ(x + 1)) (a polynomial in 1/(x + 1)) times exp(−1/x − c),
  four vectors at a time; :func:`exp_digamma_times_rows` takes exp(−c) instead of
  c, and :func:`exp_digamma_normalised_rows` gives exp(ψ(x) − ψ(total)) with
  :func:`exp_digamma32` (no logarithm) for float32 rows.

Plain-Python callers should use :func:`digamma_array` and
:func:`dirichlet_expectation` (numpy/scipy), which are the reference the
kernels are tested against.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from distlda.kernels.compile import FASTMATH, INLINE
from distlda.kernels.vectorir import VectorIR, vector_bits

__all__ = [
    "fast_exp",
    "digamma",
    "exp_digamma_minus",
    "exp_digamma_minus_t",
    "exp_digamma_minus_rows",
    "exp_digamma_times_rows",
    "exp_digamma32",
    "exp_digamma_normalised_rows",
    "digamma_array",
    "dirichlet_expectation",
]


@intrinsic
def _pow2_f64(typingctx, n):  # type: ignore[no-untyped-def]
    """2**n for a float64 holding an integer in [-1022, 1023], built from its exponent bits.

    All in LLVM integer ops on 32-bit lanes (convert, add, shift, bit cast), so that
    loops calling it vectorise on AVX2, which has no float64 → int64 conversion.
    """
    if n != types.float64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        i32 = builder.fptosi(args[0], ir.IntType(32))
        i64 = builder.sext(i32, ir.IntType(64))
        biased = builder.add(i64, ir.Constant(ir.IntType(64), 1023))
        bits = builder.shl(biased, ir.Constant(ir.IntType(64), 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split for Cody-Waite reduction
_LN2_LO = 1.9082149292705877e-10


@njit(**INLINE)
def fast_exp(x: float) -> float:
    """exp(x) in float64, vectorisable; 0 below -708 (where exp underflows), and capped at exp(709)."""
    keep = 1.0 if x >= -708.0 else 0.0
    x = min(max(x, -708.0), 709.0)
    n = np.floor(x * _LOG2E + 0.5)
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
    return keep * p * _pow2_f64(n)


@njit(**INLINE)
def _shift_sum(x: float) -> float:
    """Σ_{i=0}^{5} 1/(x+i) with a single division (x is capped at 1e15, where the sum is < 1e-14)."""
    x = min(x, 1e15)
    a = x * (x + 1.0)
    b = (x + 2.0) * (x + 3.0)
    c = (x + 4.0) * (x + 5.0)
    num = (2.0 * x + 1.0) * b * c + (2.0 * x + 5.0) * a * c + (2.0 * x + 9.0) * a * b
    return num / (a * b * c)


@njit(**INLINE)
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


@njit(**INLINE)
def digamma(x: float) -> float:
    """ψ(x) for x > 0 in float64 (uses one logarithm)."""
    y = x + 6.0
    return math.log(y) + _series_tail(y) - _shift_sum(x)


@njit(**INLINE)
def exp_digamma_minus(x: float, c: float) -> float:
    """exp(ψ(x) − c) for x > 0, with no logarithm: (x+6)·exp(tail(x+6) − shift(x) − c)."""
    y = x + 6.0
    return y * fast_exp(_series_tail(y) - _shift_sum(x) - c)


@intrinsic
def _pow2_f32(typingctx, n):  # type: ignore[no-untyped-def]
    """2**n for a float32 holding an integer in [-126, 127], in 32-bit integer ops (see :func:`_pow2_f64`)."""
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        i32 = builder.fptosi(args[0], ir.IntType(32))
        biased = builder.add(i32, ir.Constant(ir.IntType(32), 127))
        bits = builder.shl(biased, ir.Constant(ir.IntType(32), 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


_F = np.float32
_F_ONE, _F_ZERO, _F_HALF = _F(1.0), _F(0.0), _F(0.5)
_F_LO, _F_HI = _F(-87.0), _F(88.0)
_F_LOG2E = _F(1.4426950408889634)
_F_LN2_HI, _F_LN2_LO = _F(0.693359375), _F(-2.12194440e-4)
_F_C2, _F_C3, _F_C4, _F_C5, _F_C6 = _F(1 / 2), _F(1 / 6), _F(1 / 24), _F(1 / 120), _F(1 / 720)
_F_SIX, _F_TWO, _F_THREE, _F_FOUR, _F_FIVE, _F_NINE = _F(6.0), _F(2.0), _F(3.0), _F(4.0), _F(5.0), _F(9.0)
_F_XCAP = _F(1e5)
_F_S1, _F_S2, _F_S3, _F_S4 = _F(1 / 240), _F(1 / 252), _F(1 / 120), _F(1 / 12)


@njit(**INLINE)
def fast_exp32(x: np.float32) -> np.float32:
    """exp(x) in float32, vectorisable; 0 below -87."""
    keep = _F_ONE if x >= _F_LO else _F_ZERO
    x = min(max(x, _F_LO), _F_HI)
    n = np.floor(x * _F_LOG2E + _F_HALF)
    r = x - n * _F_LN2_HI - n * _F_LN2_LO
    p = _F_C6
    p = p * r + _F_C5
    p = p * r + _F_C4
    p = p * r + _F_C3
    p = p * r + _F_C2
    p = p * r + _F_ONE
    p = p * r + _F_ONE
    return keep * p * _pow2_f32(n)


@njit(**INLINE)
def _exp_digamma_minus32(x: np.float32, c: np.float32) -> np.float32:
    y = x + _F_SIX
    inv = _F_ONE / y
    t = inv * inv
    tail = ((((_F_S1 * t - _F_S2) * t + _F_S3) * t - _F_S4) * t) - _F_HALF * inv
    xs = min(x, _F_XCAP)
    a = xs * (xs + _F_ONE)
    b = (xs + _F_TWO) * (xs + _F_THREE)
    cc = (xs + _F_FOUR) * (xs + _F_FIVE)
    shift = ((_F_TWO * xs + _F_ONE) * b * cc + (_F_TWO * xs + _F_FIVE) * a * cc
             + (_F_TWO * xs + _F_NINE) * a * b) / (a * b * cc)
    return y * fast_exp32(tail - shift - c)


def exp_digamma_minus_t(x, c):  # type: ignore[no-untyped-def]
    """exp(ψ(x) − c) in the precision of ``x`` (float32 or float64); for use inside numba kernels."""
    raise NotImplementedError("exp_digamma_minus_t is for numba kernels")


@overload(exp_digamma_minus_t, fastmath=FASTMATH)
def _exp_digamma_minus_t(x, c):  # type: ignore[no-untyped-def]
    if x == types.float32:
        def impl32(x, c):  # type: ignore[no-untyped-def]
            return _exp_digamma_minus32(x, np.float32(c))
        return impl32

    def impl64(x, c):  # type: ignore[no-untyped-def]
        return exp_digamma_minus(np.float64(x), np.float64(c))
    return impl64


# The constants of exp_digamma_minus (float64) and _exp_digamma_minus32 (float32), for the vector version.
_VECTOR_CONSTANTS = {
    4: dict(exp_lo=-87.0, exp_hi=88.0, ln2=(float(_F_LN2_HI), float(_F_LN2_LO)), x_cap=1e5,
            exp_poly=[1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0],
            tail=[1 / 240, -1 / 252, 1 / 120, -1 / 12]),
    8: dict(exp_lo=-708.0, exp_hi=709.0, ln2=(_LN2_HI, _LN2_LO), x_cap=1e15,
            exp_poly=[1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6,
                      0.5, 1.0, 1.0],
            tail=[3617 / 8160, -1 / 12, 691 / 32760, -1 / 132, 1 / 240, -1 / 252, 1 / 120, -1 / 12]),
}


def _vector_exp(vec: VectorIR, x: ir.Value, k: dict) -> ir.Value:
    """exp(x) lane by lane, as :func:`fast_exp` / :func:`fast_exp32` compute it."""
    keep = vec.builder.select(vec.builder.fcmp_ordered(">=", x, vec.const(k["exp_lo"]), flags=vec.EXACT),
                              vec.const(1.0), vec.const(0.0))
    x = vec.minimum(vec.maximum(x, vec.const(k["exp_lo"])), vec.const(k["exp_hi"]))
    n = vec.floor(vec.fmuladd(x, vec.const(_LOG2E), vec.const(0.5)))
    r = vec.fmuladd(n, vec.const(-k["ln2"][0]), x)
    r = vec.fmuladd(n, vec.const(-k["ln2"][1]), r)
    return vec.mul(vec.mul(keep, vec.horner(r, k["exp_poly"])), vec.pow2(n))


# exp(ψ(y)) = y − 1/2 + u·Q(u) with u = 1/y, for y >= 1: Q is a degree-5 polynomial (highest power first) fitted to
# the relative error of exp(ψ(y)), at most 4e-8 over all y >= 1 (below float32's rounding).
_EXP_DIGAMMA_Q = [-0.0003053393309599838, 0.003079715548613783, -0.009295558657744193, 0.005781513423191552,
                  0.020510470330072375, 0.041688702825405356]
_EXP_DIGAMMA_Q_TUPLE = tuple(_EXP_DIGAMMA_Q)

# How many machine vectors the float32 version evaluates side by side (see VectorIR): each lane is a chain of about
# 30 dependent steps, and with one vector at a time the core waits on that chain rather than on its units.
_ROWS_INTERLEAVE = 4


def _vector_exp_digamma_minus(vec: VectorIR, x: ir.Value, c: ir.Value, scaled: bool = False) -> ir.Value:
    """exp(ψ(x) − c) lane by lane, as :func:`exp_digamma_minus` computes it (float64), or in float32 by
    :func:`_vector_exp_digamma_minus32`; with ``scaled``, c · exp(ψ(x)) instead."""
    if vec.size == 4:
        return _vector_exp_digamma_minus32(vec, x, c, scaled)
    k = _VECTOR_CONSTANTS[vec.size]
    y = vec.add(x, vec.const(6.0))
    inv = vec.div(vec.const(1.0), y, estimate=True)
    t = vec.mul(inv, inv)
    tail = vec.fmuladd(vec.mul(vec.horner(t, k["tail"]), t), vec.const(1.0), vec.mul(vec.const(-0.5), inv))
    xs = vec.minimum(x, vec.const(k["x_cap"]))

    def plus(v: float) -> ir.Value:
        return vec.add(xs, vec.const(v))

    p01, p23, p45 = vec.mul(xs, plus(1.0)), vec.mul(plus(2.0), plus(3.0)), vec.mul(plus(4.0), plus(5.0))
    two_x = vec.mul(vec.const(2.0), xs)
    num = vec.add(vec.add(vec.mul(vec.mul(vec.add(two_x, vec.const(1.0)), p23), p45),
                          vec.mul(vec.mul(vec.add(two_x, vec.const(5.0)), p01), p45)),
                  vec.mul(vec.mul(vec.add(two_x, vec.const(9.0)), p01), p23))
    shift = vec.div(num, vec.mul(vec.mul(p01, p23), p45), estimate=True)
    if scaled:
        return vec.mul(vec.mul(y, c), _vector_exp(vec, vec.sub(tail, shift), k))
    return vec.mul(y, _vector_exp(vec, vec.sub(vec.sub(tail, shift), c), k))


def _vector_exp_digamma_minus32(vec: VectorIR, x: ir.Value, c: ir.Value, scaled: bool = False) -> ir.Value:
    """exp(ψ(x) − c) in float32 as exp(ψ(x + 1)) · exp(−1/x − c) (or with ``scaled`` c · exp(ψ(x + 1)) ·
    exp(−1/x)): the first factor by a polynomial in 1/(x + 1) (:data:`_EXP_DIGAMMA_Q`), so that the only exp is
    that of the one step of the recurrence. Half the operations of the shift-by-6 series with a logarithm folded
    into the exp; relative error about 1e-6 (that of the exp's argument, −1/x − c, rounded to float32)."""
    x = vec.maximum(x, vec.const(1e-18))  # below, the result is 0 all the same, and x·(x + 1) stays normal
    y = vec.add(x, vec.const(1.0))
    # both reciprocals from one division (a reciprocal estimate and a Newton step where the target has one)
    both = vec.div(vec.const(1.0), vec.mul(x, y), estimate=True)
    u, step = vec.mul(x, both), vec.mul(y, both)
    g = vec.fmuladd(u, vec.horner(u, _EXP_DIGAMMA_Q), vec.sub(y, vec.const(0.5)))
    if scaled:
        return vec.mul(vec.mul(g, c), _vector_exp(vec, vec.sub(vec.const(0.0), step), _VECTOR_CONSTANTS[4]))
    return vec.mul(g, _vector_exp(vec, vec.sub(vec.sub(vec.const(0.0), c), step), _VECTOR_CONSTANTS[4]))


def _rows_codegen(context, builder, signature, args, scaled=False):  # type: ignore[no-untyped-def]
    """The loop of :func:`exp_digamma_minus_rows`: float32 rows go ``_ROWS_INTERLEAVE`` machine vectors at a time
    while that many remain, then one vector at a time, the last one masked."""
    dtype = signature.args[0].dtype
    xs = context.make_array(signature.args[0])(context, builder, args[0])
    dst = context.make_array(signature.args[1])(context, builder, args[1]).data
    n = cgutils.unpack_tuple(builder, xs.shape, 1)[0]
    c_scalar = context.cast(builder, args[2], signature.args[2], dtype)
    done = VectorIR.index(0)  # elements computed so far
    for width in ([_ROWS_INTERLEAVE, 1] if dtype == types.float32 else [1]):
        vec = VectorIR(context, builder, dtype, bits=vector_bits(dtype.bitwidth // 8) * width)
        c = vec.splat(c_scalar)

        def step(i, carried, mask=None, vec=vec, c=c):  # type: ignore[no-untyped-def]
            vec.store(_vector_exp_digamma_minus(vec, vec.load(xs.data, i, mask), c, scaled), dst, i, mask)
            return []

        n_full = builder.sdiv(n, vec.index(vec.lanes))
        vec.loop(builder.sdiv(done, vec.index(vec.lanes)), n_full, [], step)
        done = builder.mul(n_full, vec.index(vec.lanes))
    rest = builder.sub(n, done)
    with builder.if_then(builder.icmp_signed(">", rest, vec.index(0))):
        step(n_full, [], vec.tail_mask(rest))
    return context.get_dummy_value()


def _row_arrays(x: types.Type, out: types.Type) -> bool:
    """Whether ``x`` and ``out`` are 1-d float32 or float64 arrays of one type (the row intrinsics' arguments)."""
    return (isinstance(x, types.Array) and isinstance(out, types.Array) and x.dtype == out.dtype
            and x.dtype in (types.float32, types.float64) and x.ndim == out.ndim == 1)


@intrinsic
def exp_digamma_minus_rows(typingctx, x, out, c):  # type: ignore[no-untyped-def]
    """out[k] = exp(ψ(x[k]) − c) for every k, x > 0 (numba kernels only; float32 or float64 arrays of one length).

    The numpy equivalent is ``np.exp(scipy.special.psi(x) - c)``; the accuracy is that of :func:`exp_digamma_minus`
    (float64), or a relative error of about 1e-6 in float32 (:func:`_vector_exp_digamma_minus32`), computed one
    vector (float64) or ``_ROWS_INTERLEAVE`` vectors (float32) at a time (see
    :func:`~distlda.kernels.vectorir.vector_bits`)."""
    if not _row_arrays(x, out):
        return None
    return types.none(x, out, c), _rows_codegen


@intrinsic
def exp_digamma_times_rows(typingctx, x, out, scale):  # type: ignore[no-untyped-def]
    """out[k] = scale · exp(ψ(x[k])) for every k, x > 0: :func:`exp_digamma_minus_rows` with the factor exp(−c)
    given instead of c (a caller that has exp(−c) saves a logarithm). Results below the type's normal range are 0
    or subnormal (the kernels flush them)."""
    if not _row_arrays(x, out):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return _rows_codegen(context, builder, signature, args, scaled=True)

    return types.none(x, out, scale), codegen


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def exp_digamma32(t: float) -> float:
    """exp(ψ(t)) for t > 0 in float64 arithmetic, to the accuracy of float32 (relative error about 1e-7), without
    a logarithm: the polynomial of :data:`_EXP_DIGAMMA_Q` at t + 1, times exp(−1/t) (one step of the recurrence)
    when t < 1. A function call, not inlined: the E-step calls it once per document and iteration."""
    factor = math.exp(-1.0 / t) if t < 1.0 else 1.0
    y = t + 1.0 if t < 1.0 else t
    u = 1.0 / y
    q0, q1, q2, q3, q4, q5 = _EXP_DIGAMMA_Q_TUPLE
    q = ((((q0 * u + q1) * u + q2) * u + q3) * u + q4) * u + q5
    return (y - 0.5 + u * q) * factor


def exp_digamma_normalised_rows(x, out, total):  # type: ignore[no-untyped-def]
    """out[k] = exp(ψ(x[k]) − ψ(total)) for every k (numba kernels only): a document's exp(E[log θ]) from its γ
    (``x``) and Σγ (``total``). float32 rows scale by 1 / :func:`exp_digamma32` (no logarithm), float64 rows
    subtract :func:`digamma`."""
    raise NotImplementedError("exp_digamma_normalised_rows is for numba kernels")


@overload(exp_digamma_normalised_rows, fastmath=FASTMATH)
def _exp_digamma_normalised_rows(x, out, total):  # type: ignore[no-untyped-def]
    if isinstance(x, types.Array) and x.dtype == types.float32:
        def impl32(x, out, total):  # type: ignore[no-untyped-def]
            exp_digamma_times_rows(x, out, 1.0 / exp_digamma32(total))
        return impl32

    def impl64(x, out, total):  # type: ignore[no-untyped-def]
        exp_digamma_minus_rows(x, out, digamma(total))
    return impl64


def _scipy_special():  # type: ignore[no-untyped-def]
    """scipy.special, imported on first use: it costs about 20 MB and most training runs never need it."""
    from scipy import special

    return special


def digamma_array(x: np.ndarray) -> np.ndarray:
    """ψ of an array, elementwise, in the array's float type (scipy; not for kernels)."""
    x = np.asarray(x)
    out = _scipy_special().psi(x)
    return out.astype(x.dtype, copy=False) if x.dtype.kind == "f" else out


def dirichlet_expectation(alpha: np.ndarray) -> np.ndarray:
    """E[log θ] for θ ~ Dir(alpha), along the last axis.

    For a vector, ``ψ(alpha) − ψ(Σ alpha)``; for a matrix, the same row by row.
    The result has the dtype of ``alpha``.
    """
    alpha = np.asarray(alpha)
    psi = _scipy_special().psi
    if alpha.ndim == 1:
        result = psi(alpha) - psi(np.sum(alpha))
    else:
        result = psi(alpha) - psi(np.sum(alpha, axis=1))[:, np.newaxis]
    return result.astype(alpha.dtype, copy=False)
