"""Explicit LLVM vector code for the E-step's inner loops (see :class:`VectorIR` and :class:`EntryIR`)."""

from __future__ import annotations

import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils

from distlda.kernels.compile import compile_target

__all__ = ["HALF_WIDTH_AVX512", "vector_bits", "target_vector_bits", "vector_lanes", "VectorIR", "EntryIR"]

HALF_WIDTH_AVX512 = frozenset({"znver4"})
"""CPU targets (LLVM names) whose AVX-512 instructions run as two 256-bit halves (AMD Zen 4)."""


@functools.lru_cache(maxsize=None)
def vector_bits(itemsize: int) -> int:
    """Width in bits of the explicit vectors of the kernels' loops over floats of ``itemsize`` bytes, on the CPU
    the kernels are compiled for (:func:`~distlda.kernels.compile.compile_target`).

    float64: 512 bits (8 lanes). float32: 512 bits (16 lanes) where the core has full-width AVX-512 units, else
    256 (8 lanes). LLVM's own vectoriser stops at 256 bits on the Xeons that have AVX-512 (it prefers them for
    clock reasons), which halves their multiply-add rate, so the loops are written with explicit vectors; any
    width is split into the instructions the target has. Where AVX-512 is split into halves anyway (Zen 4) or
    absent (AVX2), 8 float32 lanes make phase 1 faster: it skips a zero vector of exp(E[log θ]) at half the
    granularity, and a block's 8 weights fill one vector. ``bench/kernel_ab.py`` (pinned, interleaved, 5 rounds,
    12,000 Debian documents, phase 1 at 20 fixed iterations) on Zen 4: 1.08–1.12x at K = 100 … 500, and 1.00–1.06x
    at K = 32 … 64 and 1000 and 0.91–1.04x for phase 2, where identical code gives 0.95–0.99x; compiled for AVX2
    only (``NUMBA_CPU_NAME=znver3`` and ``NUMBA_CPU_FEATURES`` without AVX-512): 1.14–1.20x at K = 100 and 200.
    float64 with 4 lanes was 0.78–0.96x (a scratch A/B), so it keeps 8.

    The width decides the order of the sums, so it is part of what the cluster's fingerprint covers (through the
    compile target); a cluster of mixed CPUs runs with one target set on every host.
    """
    return target_vector_bits(itemsize, *compile_target())


def target_vector_bits(itemsize: int, cpu_name: str, cpu_features: str) -> int:
    """:func:`vector_bits` for a given target: an LLVM CPU name and feature string (``"+avx512f,-avx512bw,…"``)."""
    if itemsize == 8:
        return 512
    full_avx512 = "+avx512f" in cpu_features.split(",") and cpu_name not in HALF_WIDTH_AVX512
    return 512 if full_avx512 else 256


def vector_lanes(itemsize: int) -> int:
    """Lanes of one explicit vector of floats of ``itemsize`` bytes (see :func:`vector_bits`)."""
    return vector_bits(itemsize) // (8 * itemsize)


class VectorIR:
    """Emits LLVM vector code of one float type into a numba intrinsic's builder.

    Vectors are ``bits`` wide (:func:`vector_bits` of the type unless told); a multiple of it makes LLVM split every
    operation into that many machine vectors issued side by side, which hides the latency of a long chain of
    dependent steps.

    Loads and stores take a scalar pointer and a vector index ``i`` (elements ``i·lanes`` onwards); with a ``mask``
    they touch only the lanes it selects (``llvm.masked.load``/``store``), which is how a row's last, partial vector
    is read and written without going past its end.
    """

    EXACT = ("nsz",)
    """Flags of the arithmetic emitted here. An instruction without flags would get numba's fast-math flags, which
    let LLVM reorder sums (differently in each kernel that inlines them) and replace divisions by estimates; "no
    signed zeros" allows neither, so every sum is added up in the order written."""

    def __init__(self, context, builder: ir.IRBuilder, dtype,  # type: ignore[no-untyped-def]
                 bits: int | None = None) -> None:
        self.builder = builder
        self.fty = context.get_value_type(dtype)
        self.size = context.get_abi_sizeof(self.fty)
        self.lanes = (bits or vector_bits(self.size)) // (8 * self.size)
        self.vty = ir.VectorType(self.fty, self.lanes)
        self.kind = "f32" if self.size == 4 else "f64"

    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.builder.fadd(a, b, flags=self.EXACT)

    def sub(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.builder.fsub(a, b, flags=self.EXACT)

    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.builder.fmul(a, b, flags=self.EXACT)

    def div(self, a: ir.Value, b: ir.Value, estimate: bool = False) -> ir.Value:
        """a / b, correctly rounded, or with ``estimate`` by the target's reciprocal estimate and a Newton step
        (relative error about 1e-7 in float32, where it is faster)."""
        return self.builder.fdiv(a, b, flags=("fast",) if estimate else self.EXACT)

    @staticmethod
    def index(n: int) -> ir.Constant:
        return ir.Constant(ir.IntType(64), n)

    def _function(self, name: str, ret: ir.Type, args: list) -> ir.Function:
        module = self.builder.module
        return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)

    def fmuladd(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        """a·b + c, fused where the target has a fast FMA (as fast-math's ``contract`` does)."""
        name = f"llvm.fmuladd.v{a.type.count}{self.kind}" if isinstance(a.type, ir.VectorType) else \
            f"llvm.fmuladd.{self.kind}"
        return self.builder.call(self._function(name, a.type, [a.type] * 3), [a, b, c])

    def splat(self, scalar: ir.Value, lanes: int | None = None) -> ir.Value:
        lanes = lanes or self.lanes
        vty = ir.VectorType(scalar.type, lanes)
        first = self.builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
        return self.builder.shuffle_vector(first, first, ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                                     [0] * lanes))

    def pointer(self, base: ir.Value, i: ir.Value, vty: ir.VectorType | None = None) -> ir.Value:
        at = self.builder.gep(base, [self.builder.mul(i, self.index(self.lanes))])
        return self.builder.bitcast(at, (vty or self.vty).as_pointer())

    def tail_mask(self, count: ir.Value) -> ir.Value:
        """The mask of the first ``count`` lanes (``count`` an i64 in 1…lanes)."""
        lanes = ir.Constant(ir.VectorType(ir.IntType(64), self.lanes), list(range(self.lanes)))
        return self.builder.icmp_signed("<", lanes, self.splat(count))

    def row_vectors(self, K: ir.Value) -> tuple:
        """(n_full, mask) for a row of K >= 1 (i64) values: vectors 0 … n_full − 1 are whole, vector n_full is read
        with ``mask``. The last vector is always the masked one (1 to ``lanes`` lanes), so that no K needs a second
        pass."""
        n_full = self.builder.sdiv(self.builder.sub(K, self.index(1)), self.index(self.lanes))
        return n_full, self.tail_mask(self.builder.sub(K, self.builder.mul(n_full, self.index(self.lanes))))

    def load(self, base: ir.Value, i: ir.Value, mask: ir.Value | None = None) -> ir.Value:
        ptr, align = self.pointer(base, i), ir.Constant(ir.IntType(32), self.size)
        if mask is None:
            return self.builder.load(ptr, align=self.size)
        fn = self._function(f"llvm.masked.load.v{self.lanes}{self.kind}.p0", self.vty,
                            [ptr.type, align.type, mask.type, self.vty])
        return self.builder.call(fn, [ptr, align, mask, ir.Constant(self.vty, [0.0] * self.lanes)])

    def store(self, value: ir.Value, base: ir.Value, i: ir.Value, mask: ir.Value | None = None) -> None:
        ptr, align = self.pointer(base, i), ir.Constant(ir.IntType(32), self.size)
        if mask is None:
            self.builder.store(value, ptr, align=self.size)
            return
        fn = self._function(f"llvm.masked.store.v{self.lanes}{self.kind}.p0", ir.VoidType(),
                            [self.vty, ptr.type, align.type, mask.type])
        self.builder.call(fn, [value, ptr, align, mask])

    def _halve(self, a: ir.Value, b: ir.Value, groups: int) -> ir.Value:
        """Lanes of ``a`` and ``b`` (each ``groups`` blocks of lanes) summed pairwise within each block: the result
        has the blocks of ``a`` then those of ``b``, each half as wide."""
        n = a.type.count
        g = n // groups
        half = [grp * g + i for grp in range(groups) for i in range(g // 2)]
        low = half + [n + x for x in half]
        high = [x + g // 2 for x in low]
        mask = ir.VectorType(ir.IntType(32), len(low))
        return self.add(self.builder.shuffle_vector(a, b, ir.Constant(mask, low)),
                        self.builder.shuffle_vector(a, b, ir.Constant(mask, high)))

    def lane_sums(self, vectors: list) -> ir.Value:
        """A vector of the lane sums of ``vectors`` (a power of two of them, at most ``lanes``), each added up by
        halving in a fixed order."""
        groups = 1
        while len(vectors) > 1:
            vectors = [self._halve(vectors[k], vectors[k + 1], groups) for k in range(0, len(vectors), 2)]
            groups *= 2
        vec = vectors[0]
        while vec.type.count > groups:
            low_half = self._halve(vec, vec, groups)  # blocks of vec twice: keep the first copy
            keep = ir.Constant(ir.VectorType(ir.IntType(32), vec.type.count // 2), list(range(vec.type.count // 2)))
            vec = self.builder.shuffle_vector(low_half, low_half, keep)
        return vec

    def loop(self, start: ir.Value, stop: ir.Value, carried: list, body) -> list:  # type: ignore[no-untyped-def]
        """Emit ``for i in range(start, stop): carried = body(i, carried)``; returns the final ``carried``."""
        builder = self.builder
        entry = builder.block
        head, step, done = (builder.append_basic_block(n) for n in ("vloop.head", "vloop.body", "vloop.done"))
        builder.branch(head)
        builder.position_at_end(head)
        i = builder.phi(start.type)
        i.add_incoming(start, entry)
        phis = []
        for value in carried:
            phi = builder.phi(value.type)
            phi.add_incoming(value, entry)
            phis.append(phi)
        builder.cbranch(builder.icmp_signed("<", i, stop), step, done)
        builder.position_at_end(step)
        new = body(i, phis)
        i.add_incoming(builder.add(i, ir.Constant(start.type, 1)), builder.block)
        for phi, value in zip(phis, new):
            phi.add_incoming(value, builder.block)
        builder.branch(head)
        builder.position_at_end(done)
        return phis

    def abs(self, a: ir.Value) -> ir.Value:
        name = f"llvm.fabs.v{self.lanes}{self.kind}"
        return self.builder.call(self._function(name, self.vty, [self.vty]), [a])

    def const(self, value: float) -> ir.Constant:
        """A vector with every lane ``value``."""
        return ir.Constant(self.vty, [float(value)] * self.lanes)

    def minimum(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.builder.select(self.builder.fcmp_ordered("<", a, b, flags=self.EXACT), a, b)

    def maximum(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.builder.select(self.builder.fcmp_ordered(">", a, b, flags=self.EXACT), a, b)

    def floor(self, a: ir.Value) -> ir.Value:
        name = f"llvm.floor.v{self.lanes}{self.kind}"
        return self.builder.call(self._function(name, self.vty, [self.vty]), [a])

    def pow2(self, n: ir.Value) -> ir.Value:
        """2**n for lanes holding integers in the normal exponent range, built from the exponent bits."""
        bits = 8 * self.size
        ity = ir.VectorType(ir.IntType(bits), self.lanes)
        bias, mantissa = (127, 23) if self.size == 4 else (1023, 52)
        # through 32-bit integers, which AVX2 converts in one instruction (it has no float64 → int64 conversion)
        i = self.builder.fptosi(n, ir.VectorType(ir.IntType(32), self.lanes))
        if bits == 64:
            i = self.builder.sext(i, ity)
        i = self.builder.add(i, ir.Constant(ity, [bias] * self.lanes))
        i = self.builder.shl(i, ir.Constant(ity, [mantissa] * self.lanes))
        return self.builder.bitcast(i, self.vty)

    def horner(self, x: ir.Value, coefficients: list) -> ir.Value:
        """c0·x^(n-1) + … + c(n-1), highest power first, by Horner's rule with multiply-adds."""
        p = self.const(coefficients[0])
        for c in coefficients[1:]:
            p = self.fmuladd(p, x, self.const(c))
        return p


class EntryIR:
    """The E-step's one operation, "add a block of entries", emitted with :class:`VectorIR` into an intrinsic whose
    first arguments are ``(x, table, ids, counts, …)`` and last ``out`` (C-contiguous arrays of one float type).

    Entry j stands for the row ``table[ids[j]]`` with the count ``counts[j]``; its *weight* is
    ``counts[j] / (x · table[ids[j]] + ε)``, and adding it means ``out += weight · table[ids[j]]``. A block of
    entries has its dot products computed side by side (independent chains keep both FMA units busy and ``x`` is
    read once for all), their lane sums added up together and the weights divided as one vector; its accumulation
    reads and writes each vector of ``out`` once for all the block's rows. Rows are K = ``table.shape[1]`` long
    (see :meth:`VectorIR.row_vectors`).
    """

    MAX_BLOCK = 8
    """Most entries in one block: :meth:`over_blocks` emits blocks of 8, then one of 4, 2 and 1."""

    def __init__(self, context, builder: ir.IRBuilder, sig, args) -> None:  # type: ignore[no-untyped-def]
        self.context, self.builder = context, builder
        x_t, self.table_t, self.ids_t, counts_t = sig.args[:4]
        self.vec = vec = VectorIR(context, builder, self.table_t.dtype)
        if vec.lanes < self.MAX_BLOCK:  # a block's weights are one vector of lane sums (VectorIR.lane_sums)
            raise ValueError(f"EntryIR needs vectors of at least {self.MAX_BLOCK} lanes, got {vec.lanes}")
        self.table = context.make_array(self.table_t)(context, builder, args[1])
        self.ids = context.make_array(self.ids_t)(context, builder, args[2])
        self.x = context.make_array(x_t)(context, builder, args[0]).data
        self.counts = context.make_array(counts_t)(context, builder, args[3]).data
        self.out = context.make_array(sig.args[-1])(context, builder, args[-1]).data
        self.K = cgutils.unpack_tuple(builder, self.table.shape, 2)[1]
        self.n_full, self.mask = vec.row_vectors(self.K)
        self.active: tuple | None = None

    def only(self, active: ir.Value, count: ir.Value) -> None:
        """From now on, read and write only the vectors whose indices are the ``count`` (i64) int32 values at
        ``active`` (ascending), each whole: for rows whose length is a multiple of the vector (no tail to mask), and
        an ``x`` that is zero in every vector left out. Left out of a dot product, such a vector would have added
        exact zeros; left out of ``out``, its lanes keep what they held."""
        self.active = (active, count)

    def _every_vector(self, body, carried: list) -> list:  # type: ignore[no-untyped-def]
        """``carried = body(i, carried, mask)`` over every vector of a row in order, the last with its mask."""
        carried = self.vec.loop(self.vec.index(0), self.n_full, carried, body)
        return body(self.n_full, carried, self.mask)

    def _vectors(self, body, carried: list) -> list:  # type: ignore[no-untyped-def]
        """``carried = body(i, carried, mask)`` over the vectors of a row in order: every one, or only the active
        ones (see :meth:`only`)."""
        vec, b = self.vec, self.builder
        if self.active is None:
            return self._every_vector(body, carried)
        active, count = self.active

        def at(t, carried):  # type: ignore[no-untyped-def]
            return body(b.sext(b.load(b.gep(active, [t])), ir.IntType(64)), carried)

        return vec.loop(vec.index(0), count, carried, at)

    def rows(self, j: ir.Value, block: int) -> list:
        """Pointers to the rows of the entries j … j + block − 1."""
        b, ctx = self.builder, self.context
        rows = []
        for k in range(block):
            v = b.load(cgutils.get_item_pointer(ctx, b, self.ids_t, self.ids, [b.add(j, VectorIR.index(k))]))
            v = ctx.cast(b, v, self.ids_t.dtype, types.int64)
            rows.append(cgutils.get_item_pointer(ctx, b, self.table_t, self.table, [v, VectorIR.index(0)]))
        return rows

    def block_pointer(self, base: ir.Value, j: ir.Value, block: int) -> ir.Value:
        """``base + j`` as a pointer to a vector of ``block`` values (a block's counts or weights)."""
        return self.builder.bitcast(self.builder.gep(base, [j]), ir.VectorType(self.vec.fty, block).as_pointer())

    def weights(self, j: ir.Value, rows: list, eps: ir.Value) -> ir.Value:
        """The vector of the weights of the entries j … j + len(rows) − 1."""
        vec = self.vec

        def dots(i, sums, mask=None):  # type: ignore[no-untyped-def]
            xi = vec.load(self.x, i, mask)
            return [vec.fmuladd(xi, vec.load(r, i, mask), s) for r, s in zip(rows, sums)]

        sums = self._vectors(dots, [vec.const(0.0)] * len(rows))
        counts = self.builder.load(self.block_pointer(self.counts, j, len(rows)), align=vec.size)
        return vec.div(counts, vec.add(vec.lane_sums(sums), vec.splat(eps, len(rows))))

    def axpy(self, rows: list, weights: ir.Value) -> None:
        """out += Σ_b weights[b] · rows[b], in the order of the rows."""
        vec = self.vec
        splats = [vec.splat(self.builder.extract_element(weights, ir.Constant(ir.IntType(32), b)))
                  for b in range(len(rows))]

        def step(i, carried, mask=None):  # type: ignore[no-untyped-def]
            a = vec.load(self.out, i, mask)
            for r, w in zip(rows, splats):
                a = vec.fmuladd(w, vec.load(r, i, mask), a)
            vec.store(a, self.out, i, mask)
            return []

        self._vectors(step, [])

    def zero_out(self) -> None:
        """out[:K] = 0 (every vector, active or not)."""
        vec = self.vec

        def step(i, carried, mask=None):  # type: ignore[no-untyped-def]
            vec.store(vec.const(0.0), self.out, i, mask)
            return []

        self._every_vector(step, [])

    def over_blocks(self, first: ir.Value, last: ir.Value, emit) -> None:  # type: ignore[no-untyped-def]
        """``emit(j, block)`` for the entries first <= j < last (i64): blocks of 8 while they fit, then one block
        of 4, 2 and 1 for the rest."""
        b, eight = self.builder, VectorIR.index(8)
        n8 = b.sdiv(b.sub(last, first), eight)

        def block_of_8(i, carried):  # type: ignore[no-untyped-def]
            emit(b.add(first, b.mul(i, eight)), 8)
            return []

        self.vec.loop(VectorIR.index(0), n8, [], block_of_8)
        j = b.add(first, b.mul(n8, eight))
        rest = b.sub(last, j)
        for size in (4, 2, 1):
            part = b.and_(rest, VectorIR.index(size))
            with b.if_then(b.icmp_signed("!=", part, VectorIR.index(0))):
                emit(j, size)
            j = b.add(j, part)
