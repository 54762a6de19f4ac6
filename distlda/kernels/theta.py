"""exp(E[log θ]) of a document's γ in float32 when most of its topics sit at α (numba kernels only).

Phase 1 of the E-step recomputes exp(ψ(γ) − ψ(Σγ)) for every topic of a document at every iteration. A vector of
topics whose exp(E[log θ]) was exactly zero gets γ = α back from the update, so its new exp(E[log θ]) is
c · exp(ψ(α)) = (g · c) · e, with g = exp(ψ(α + 1)) and e = exp(−1/α) the two factors
:func:`~distlda.kernels.special.vector_exp_digamma_minus32` multiplies: computed once for α, those vectors cost two
products instead of a polynomial, a division and an exp, with the same bits.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from distlda.kernels.compile import FASTMATH
from distlda.kernels.special import (ROWS_INTERLEAVE, digamma, exp_digamma32, exp_digamma_minus_rows,
                                     exp_digamma_parts32, exp_digamma_times_rows, recurrence_factor32,
                                     vector_exp_digamma_minus32)
from distlda.kernels.vectorir import VECTOR_BITS, VectorIR

__all__ = ["exp_digamma_factors_rows", "exp_digamma_times_active", "exp_digamma_normalised_active", "alpha_factors"]


def _float32_rows(*arrays: types.Type) -> bool:
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float32
               for a in arrays)


@intrinsic
def exp_digamma_factors_rows(typingctx, x, g_out, e_out):  # type: ignore[no-untyped-def]
    """g_out[k] = exp(ψ(x[k] + 1)) and e_out[k] = exp(−1/x[k]) (float32 rows of one length; numba kernels only), the
    two factors whose product times a scale c is what :func:`exp_digamma_times_rows` gives: c · exp(ψ(x)) =
    (g · c) · e, with these bits (see :func:`exp_digamma_times_active`)."""
    if not _float32_rows(x, g_out, e_out):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vec = VectorIR(context, builder, types.float32)
        xs = context.make_array(sig.args[0])(context, builder, args[0])
        g_p, e_p = (context.make_array(sig.args[k])(context, builder, args[k]).data for k in (1, 2))
        n_full, mask = vec.row_vectors(cgutils.unpack_tuple(builder, xs.shape, 1)[0])

        def step(i, carried, mask=None):  # type: ignore[no-untyped-def]
            g, recip = exp_digamma_parts32(vec, vec.load(xs.data, i, mask))
            vec.store(g, g_p, i, mask)
            vec.store(recurrence_factor32(vec, recip), e_p, i, mask)
            return []

        vec.loop(vec.index(0), n_full, [], step)
        step(n_full, [], mask)
        return context.get_dummy_value()

    return types.none(x, g_out, e_out), codegen


@intrinsic
def exp_digamma_times_active(typingctx, x, out, scale, g0, e0, listed, count):  # type: ignore[no-untyped-def]
    """out = scale · exp(ψ(x)) over a float32 row, with the bits of :func:`exp_digamma_times_rows`, for an ``x``
    that equals a fixed row x₀ in every whole vector (16 lanes) not among the ``count`` listed (int32 vector
    indices, each of a whole vector): those take (g₀ · scale) · e₀ from x₀'s factors
    (:func:`exp_digamma_factors_rows`), two products, and only the listed vectors and the row's partial last
    vector are computed in full (four listed vectors a step, as independent chains)."""
    if not (_float32_rows(x, out, g0, e0) and isinstance(listed, types.Array) and listed.dtype == types.int32
            and isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vec = VectorIR(context, builder, types.float32)
        xs = context.make_array(sig.args[0])(context, builder, args[0])
        out_p, g_p, e_p, listed_p = (context.make_array(sig.args[k])(context, builder, args[k]).data
                                     for k in (1, 3, 4, 5))
        c = vec.splat(context.cast(builder, args[2], sig.args[2], types.float32))
        n = cgutils.unpack_tuple(builder, xs.shape, 1)[0]
        whole = builder.sdiv(n, vec.index(vec.lanes))

        def cheap(i, carried):  # type: ignore[no-untyped-def]
            vec.store(vec.mul(vec.mul(vec.load(g_p, i), c), vec.load(e_p, i)), out_p, i)
            return []

        def full(i, mask=None):  # type: ignore[no-untyped-def]
            vec.store(vector_exp_digamma_minus32(vec, vec.load(xs.data, i, mask), c, scaled=True), out_p, i, mask)

        def listed_at(t):  # type: ignore[no-untyped-def]
            return builder.sext(builder.load(builder.gep(listed_p, [t])), ir.IntType(64))

        vec.loop(vec.index(0), whole, [], cheap)
        count = context.cast(builder, args[6], sig.args[6], types.int64)
        quads = builder.sdiv(count, vec.index(ROWS_INTERLEAVE))

        wide = VectorIR(context, builder, types.float32, bits=VECTOR_BITS * ROWS_INTERLEAVE)
        c_wide = wide.splat(context.cast(builder, args[2], sig.args[2], types.float32))

        def four(q, carried):  # type: ignore[no-untyped-def]
            # the listed vectors joined into one wide vector, as exp_digamma_times_rows computes a row's vectors
            at = [listed_at(builder.add(builder.mul(q, vec.index(ROWS_INTERLEAVE)), vec.index(k)))
                  for k in range(ROWS_INTERLEAVE)]
            parts = [vec.load(xs.data, i) for i in at]
            while len(parts) > 1:
                lanes = 2 * parts[0].type.count
                parts = [builder.shuffle_vector(parts[k], parts[k + 1], ir.Constant(ir.VectorType(ir.IntType(32),
                                                lanes), list(range(lanes)))) for k in range(0, len(parts), 2)]
            result = vector_exp_digamma_minus32(wide, parts[0], c_wide, scaled=True)
            for k, i in enumerate(at):
                part = ir.Constant(ir.VectorType(ir.IntType(32), vec.lanes), list(range(k * vec.lanes,
                                                                                      (k + 1) * vec.lanes)))
                vec.store(builder.shuffle_vector(result, result, part), out_p, i)
            return []

        vec.loop(vec.index(0), quads, [], four)
        vec.loop(builder.mul(quads, vec.index(ROWS_INTERLEAVE)), count, [],
                 lambda t, carried: full(listed_at(t)) or [])
        rest = builder.sub(n, builder.mul(whole, vec.index(vec.lanes)))
        with builder.if_then(builder.icmp_signed(">", rest, vec.index(0))):
            full(whole, vec.tail_mask(rest))
        return context.get_dummy_value()

    return types.none(x, out, scale, g0, e0, listed, count), codegen


def exp_digamma_normalised_active(x, out, total, g0, e0, active, n_active):  # type: ignore[no-untyped-def]
    """:func:`exp_digamma_normalised_rows` (numba kernels only) with the same bits, computing in full, in float32,
    only the ``n_active`` vectors listed in ``active`` (ascending int32 vector indices; the row's partial last
    vector is always computed) and taking the others from the factors ``g0``, ``e0`` of the row they equal
    (:func:`alpha_factors`; see :func:`exp_digamma_times_active`). float64 rows are computed whole."""
    raise NotImplementedError("exp_digamma_normalised_active is for numba kernels")


@overload(exp_digamma_normalised_active, fastmath=FASTMATH)
def _exp_digamma_normalised_active(x, out, total, g0, e0, active, n_active):  # type: ignore[no-untyped-def]
    if isinstance(x, types.Array) and x.dtype == types.float32:
        lanes = VECTOR_BITS // 32

        def impl32(x, out, total, g0, e0, active, n_active):  # type: ignore[no-untyped-def]
            whole = x.shape[0] // lanes
            n = n_active
            if n > 0 and active[n - 1] >= whole:  # the partial last vector: computed apart
                n -= 1
            if n == whole:  # every vector in full: the plain loop, without the factors' pass
                exp_digamma_times_rows(x, out, 1.0 / exp_digamma32(total))
            else:
                exp_digamma_times_active(x, out, 1.0 / exp_digamma32(total), g0, e0, active, n)
        return impl32

    def impl64(x, out, total, g0, e0, active, n_active):  # type: ignore[no-untyped-def]
        exp_digamma_minus_rows(x, out, digamma(total))
    return impl64


def alpha_factors(x, g0, e0):  # type: ignore[no-untyped-def]
    """In float32, g0 and e0 = the factors of ``x`` for :func:`exp_digamma_normalised_active`
    (:func:`exp_digamma_factors_rows`); in float64 nothing (numba kernels only)."""
    raise NotImplementedError("alpha_factors is for numba kernels")


@overload(alpha_factors, fastmath=FASTMATH)
def _alpha_factors(x, g0, e0):  # type: ignore[no-untyped-def]
    if isinstance(x, types.Array) and x.dtype == types.float32:
        def impl32(x, g0, e0):  # type: ignore[no-untyped-def]
            exp_digamma_factors_rows(x, g0, e0)
        return impl32

    def impl64(x, g0, e0):  # type: ignore[no-untyped-def]
        pass
    return impl64
