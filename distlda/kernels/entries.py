"""The E-step's one operation, "add a block of entries", as numba intrinsics (see :mod:`distlda.kernels.estep`).

An entry j stands for the row ``table[ids[j]]`` with the count ``counts[j]``; its weight is
``counts[j] / (x · table[ids[j]] + ε)``, and adding it means ``acc += weight · table[ids[j]]``. Phase 1 of the
E-step adds a document's entries against its exp(E[log θ]) (``x``) and phase 2 a word's entries against its
exp(E[log β]) row. The code of one block is :class:`~distlda.kernels.vectorir.EntryIR`; here are the loops over a
range of entries, whole in one piece of LLVM code, and the list of a row's vectors that are not zero, which phase 1
uses to skip the vectors of topics a document does not use.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from distlda.kernels.vectorir import EntryIR, VectorIR

__all__ = ["ADD_BLOCKS", "ROWS_IN_L1", "TWO_PASS_MIN_WIDTH", "add_entries", "accumulate_entries",
           "accumulate_active", "nonzero_vectors", "lanes_of"]


def _entry_arrays(arrays: tuple, table: types.Type, ids: types.Type) -> bool:
    """Whether intrinsic arguments fit :class:`~distlda.kernels.vectorir.EntryIR`: contiguous arrays of the table's
    float type (the code reads them as flat memory: refuse any other layout at compile time) and integer ids."""
    return (all(isinstance(a, types.Array) and a.layout == "C" for a in (table, ids, *arrays)) and table.ndim == 2
            and all(a.dtype == table.dtype for a in arrays) and isinstance(ids.dtype, types.Integer))


def _add_block(block: int):  # type: ignore[no-untyped-def]
    """An intrinsic ``f(x, table, ids, counts, j, eps, acc)`` that adds the ``block`` entries j, j+1, … to
    ``acc``, as the loop of the numpy equivalent::

        for v, c in zip(ids[j:j + block], counts[j:j + block]):
            acc += c / (x @ table[v] + eps) * table[v]

    (see :class:`~distlda.kernels.vectorir.EntryIR` for how)."""

    @intrinsic
    def add_block(typingctx, x, table, ids, counts, j, eps, acc):  # type: ignore[no-untyped-def]
        if not _entry_arrays((x, counts, acc), table, ids):
            return None

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            entries = EntryIR(context, builder, sig, args)
            at = context.cast(builder, args[4], sig.args[4], types.int64)
            rows = entries.rows(at, block)
            entries.axpy(rows, entries.weights(at, rows, context.cast(builder, args[5], sig.args[5], table.dtype)))
            return context.get_dummy_value()

        return types.none(x, table, ids, counts, j, eps, acc), codegen

    return add_block


ADD_BLOCKS = {block: _add_block(block) for block in (8, 4, 2, 1)}
"""The intrinsics that add blocks of 8, 4, 2 and 1 entries (see :func:`_add_block`)."""

ROWS_IN_L1 = 24 * 1024
"""Bytes of a document's rows up to which phase 1 computes all its weights before adding its rows up (half of a
recent x86 core's 48 KB L1: the rest holds eth, acc and the other documents' buffers)."""

TWO_PASS_MIN_WIDTH = 48
"""Shortest rows (padded K, in values) for which phase 1 computes a document's weights first: below it a block's
dot products are too short a chain to be worth reading the rows twice. Measured with 16 lanes: K = 10 runs 13%
faster block by block, K = 32 7%, K = 64 the same, K = 100 5% slower; again with 8 lanes (Zen 4, pinned A/B of
the threshold at 16 or 24 against 48): K = 10 and 32 run 8–13% faster block by block, and moving it to 80 leaves
K = 50 and 64 the same."""


def _entries_codegen(context, builder, sig, args, two_passes: bool,  # type: ignore[no-untyped-def]
                     active: bool = False):
    """The code of :func:`add_entries` (``two_passes`` False), :func:`accumulate_entries` (True) or, with
    ``active``, :func:`accumulate_active`."""
    entries = EntryIR(context, builder, sig, args)
    if active:
        entries.only(context.make_array(sig.args[8])(context, builder, args[8]).data,
                     context.cast(builder, args[9], sig.args[9], types.int64))
    first, last = (context.cast(builder, args[k], sig.args[k], types.int64) for k in (4, 5))
    eps = context.cast(builder, args[6], sig.args[6], sig.args[1].dtype)

    def add(j, block):  # type: ignore[no-untyped-def]
        rows = entries.rows(j, block)
        entries.axpy(rows, entries.weights(j, rows, eps))

    if not two_passes:
        entries.over_blocks(first, last, add)
        return context.get_dummy_value()
    weights = context.make_array(sig.args[7])(context, builder, args[7]).data

    def store_weights(j, block):  # type: ignore[no-untyped-def]
        w = entries.weights(j, entries.rows(j, block), eps)
        builder.store(w, entries.block_pointer(weights, j, block), align=entries.vec.size)

    def add_weighted(j, block):  # type: ignore[no-untyped-def]
        w = builder.load(entries.block_pointer(weights, j, block), align=entries.vec.size)
        entries.axpy(entries.rows(j, block), w)

    entries.zero_out()
    size = builder.mul(builder.mul(builder.sub(last, first), entries.K), VectorIR.index(entries.vec.size))
    fits = builder.and_(builder.icmp_signed("<=", size, VectorIR.index(ROWS_IN_L1)),
                        builder.icmp_signed(">=", entries.K, VectorIR.index(TWO_PASS_MIN_WIDTH)))
    with builder.if_else(fits) as (in_l1, too_big):
        with in_l1:
            entries.over_blocks(first, last, store_weights)
            entries.over_blocks(first, last, add_weighted)
        with too_big:
            entries.over_blocks(first, last, add)
    return context.get_dummy_value()


@intrinsic
def add_entries(typingctx, x, table, ids, counts, first, last, eps, acc):  # type: ignore[no-untyped-def]
    """acc += Σ_j counts[j] / (x · table[ids[j]] + ε) · table[ids[j]] over first <= j < last, in blocks of 8
    entries (then one of 4, 2 and 1: see :data:`ADD_BLOCKS`), the whole loop in one piece of LLVM code."""
    if not _entry_arrays((x, counts, acc), table, ids):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return _entries_codegen(context, builder, sig, args, False)

    return types.none(x, table, ids, counts, first, last, eps, acc), codegen


@intrinsic
def accumulate_entries(typingctx, x, table, ids, counts, first, last, eps, weights,  # type: ignore[no-untyped-def]
                        acc):
    """acc = the sum :func:`add_entries` adds, with the same bits: while the rows of the entries fit in L1
    (:data:`ROWS_IN_L1`) and are not too short (:data:`TWO_PASS_MIN_WIDTH`), first every block's weights (into
    ``weights[first:last]``), then every block's sum, so that no block's sums wait on its division (the blocks of
    each pass are independent of each other); else block by block, each block's rows read twice while they are
    still in L1."""
    if not _entry_arrays((x, counts, weights, acc), table, ids):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return _entries_codegen(context, builder, sig, args, True)

    return types.none(x, table, ids, counts, first, last, eps, weights, acc), codegen


@intrinsic
def accumulate_active(typingctx, x, table, ids, counts, first, last, eps, weights, active,  # type: ignore[no-untyped-def]
                       n_active, acc):
    """:func:`accumulate_entries` over the ``n_active`` vectors of the rows listed in ``active`` (int32, ascending)
    only, for a table whose rows are whole vectors and an ``x`` that is exactly zero in every vector not listed (see
    :func:`nonzero_vectors`): the same bits in the listed vectors of ``acc`` (a dot product's lane sums skip only
    exact zeros), and zeros in the others."""
    if not (_entry_arrays((x, counts, weights, acc), table, ids) and isinstance(active, types.Array)
            and active.dtype == types.int32 and active.layout == "C" and isinstance(n_active, types.Integer)):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return _entries_codegen(context, builder, sig, args, True, active=True)

    return types.none(x, table, ids, counts, first, last, eps, weights, active, n_active, acc), codegen


@intrinsic
def nonzero_vectors(typingctx, x, active):  # type: ignore[no-untyped-def]
    """The indices of the vectors of ``x`` (a whole number of vectors long) that hold a lane other than zero, written
    to ``active`` in ascending order; returns how many (int64). Branch-free: one compare per vector."""
    if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and x.dtype in (types.float32, types.float64)
            and isinstance(active, types.Array) and active.dtype == types.int32 and active.layout == "C"):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vec = VectorIR(context, builder, sig.args[0].dtype)
        xs = context.make_array(sig.args[0])(context, builder, args[0])
        out = context.make_array(sig.args[1])(context, builder, args[1]).data
        n = builder.sdiv(cgutils.unpack_tuple(builder, xs.shape, 1)[0], vec.index(vec.lanes))
        bits = ir.IntType(vec.lanes)

        def step(i, carried):  # type: ignore[no-untyped-def]
            # unordered, and without numba's fast-math flags, which would let LLVM assume no NaN: NaN is not zero
            lanes = builder.fcmp_unordered("!=", vec.load(xs.data, i), vec.const(0.0), flags=VectorIR.EXACT)
            any_lane = builder.icmp_unsigned("!=", builder.bitcast(lanes, bits), ir.Constant(bits, 0))
            builder.store(builder.trunc(i, ir.IntType(32)), builder.gep(out, [carried[0]]))
            return [builder.add(carried[0], builder.zext(any_lane, ir.IntType(64)))]

        return vec.loop(vec.index(0), n, [vec.index(0)], step)[0]

    return types.int64(x, active), codegen


@intrinsic
def lanes_of(typingctx, x):  # type: ignore[no-untyped-def]
    """The lanes of the kernels' vectors of ``x``'s float type (int64; see
    :func:`~distlda.kernels.vectorir.vector_bits`): the unit in which phase 1 lists and skips a row's vectors."""
    if not (isinstance(x, types.Array) and x.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return VectorIR.index(VectorIR(context, builder, sig.args[0].dtype).lanes)

    return types.int64(x), codegen
