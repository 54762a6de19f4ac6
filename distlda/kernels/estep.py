"""numba kernels of the E-step over a chunk held as CSR arrays.

The E-step is split in two phases so that its result never depends on how the
documents were split between threads or workers:

1. :func:`estep_gamma` — the heavy part, parallel over documents: fit each
   document's variational Dirichlet γ by the fixed-point iteration of Hoffman,
   Blei & Bach (2010), starting from a γ drawn from the document's own key.
2. :func:`word_stats` — parallel over *words*: each word's row of
   the sufficient statistics is summed over the documents that contain it, in
   document order. Phase 2 needs only γ (and the documents), so a worker can
   return γ alone and the dispatcher or client can rebuild exactly the same
   statistics.

Layout: the topic-word matrix exp(E[log β]) is passed word-major (V × K,
``exp_elogbeta``) so that the K values of one word are contiguous. Statistics are
accumulated word-major too ("raw" statistics, before the final multiplication
by exp(E[log β]), which the M-step kernel folds in).

As in gensim, the normaliser of each word's topic responsibilities is
``exp(E[log θ_d]) · exp(E[log β_·v]) + ε`` with ε the machine epsilon of the
dtype: it keeps the weights of words whose topic probabilities underflowed
(common in float32 right after the first update) finite.

Speed: both phases spend their time in one operation, "add a block of entries"
(:func:`_add_entries`): for 8 entries at a time, 8 dot products against one
vector, a vector of 8 divisions, and 8 scaled rows added into one accumulator.
It is written in explicit 512-bit LLVM vectors whose last vector of a row is
masked (:class:`~distlda.kernels.vectorir.VectorIR`), so every K runs at the
vector rate with no scalar tail. Phase 1 reads a copy of the rows its chunk uses,
each padded to whole vectors and aligned on a cache line (:func:`_chunk_rows`;
a 512-bit load across two lines costs two), fits two documents side by side so
that one's work fills the other's waits, and computes a document's
exp(ψ(γ) − ψ(Σγ)) in one vector call per iteration
(:func:`~distlda.kernels.special.exp_digamma_minus_rows`). The kernels run with
subnormals flushed (:func:`~distlda.kernels.fpmode.flush_subnormals`): products
of tiny θ and β made K = 50 and 64 several times slower than K = 100.
Measured by ``bench/kernel_speed.py``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from distlda.kernels.compile import INLINE, KERNEL
from distlda.kernels.fpmode import flush_subnormals, restore_fp_mode
from distlda.kernels.vectorir import VectorIR
from distlda.kernels.parallel import parallel_for
from distlda.kernels.rng import gamma_init_value
from distlda.kernels.special import digamma, exp_digamma_minus_rows

__all__ = [
    "DOC_BLOCK",
    "estep_gamma",
    "expected_theta",
    "word_order",
    "word_stats",
    "elogtheta_rows",
    "add_rows_in_order",
]

DOC_BLOCK = 16
"""Documents per parallel work item in the per-document kernels."""

_KW = KERNEL


@njit(**INLINE)
def _theta_from_gamma(gamma_row: np.ndarray, eth: np.ndarray) -> None:
    """eth[k] = exp(ψ(γ_k) − ψ(Σ γ)) for one document."""
    K = gamma_row.shape[0]
    s = 0.0
    for k in range(K):
        s += gamma_row[k]
    exp_digamma_minus_rows(gamma_row, eth, digamma(s))


def _entry_rows(context, builder, sig, args, block):  # type: ignore[no-untyped-def]
    """The data pointers of eth and acc, the ``block`` rows of exp(E[log β]) and the vector of counts of the entries
    j, j+1, … of an entry block (the arguments of :func:`_entry_block`'s intrinsic)."""
    eth_t, table_t, ids_t, counts_t, j_t, _, acc_t = sig.args
    eth_a, table_a, ids_a, counts_a, j_v, _, acc_a = args
    table = context.make_array(table_t)(context, builder, table_a)
    ids = context.make_array(ids_t)(context, builder, ids_a)
    counts = context.make_array(counts_t)(context, builder, counts_a)
    j = context.cast(builder, j_v, j_t, types.int64)
    rows = []
    for b in range(block):
        v = builder.load(cgutils.get_item_pointer(context, builder, ids_t, ids, [builder.add(j, VectorIR.index(b))]))
        v = context.cast(builder, v, ids_t.dtype, types.int64)
        rows.append(cgutils.get_item_pointer(context, builder, table_t, table, [v, VectorIR.index(0)]))
    first = cgutils.get_item_pointer(context, builder, counts_t, counts, [j])
    count_vty = ir.VectorType(context.get_value_type(counts_t.dtype), block)
    count_ptr = builder.bitcast(first, count_vty.as_pointer())
    count_vec = builder.load(count_ptr, align=context.get_abi_sizeof(count_vty.element))
    eth = context.make_array(eth_t)(context, builder, eth_a).data
    acc = context.make_array(acc_t)(context, builder, acc_a).data
    K = cgutils.unpack_tuple(builder, table.shape, 2)[1]
    return eth, acc, rows, count_vec, K


def _entry_block_codegen(context, builder, sig, args, block):  # type: ignore[no-untyped-def]
    vec = VectorIR(context, builder, sig.args[1].dtype)
    eth, acc, rows, count_vec, K = _entry_rows(context, builder, sig, args, block)
    # the last vector of a row is always the masked one (1 to ``lanes`` lanes), so that no K needs a second pass
    n_full = builder.sdiv(builder.sub(K, vec.index(1)), vec.index(vec.lanes))
    mask = vec.tail_mask(builder.sub(K, builder.mul(n_full, vec.index(vec.lanes))))

    def dots(i, sums, mask=None):  # type: ignore[no-untyped-def]
        x = vec.load(eth, i, mask)
        return [vec.fmuladd(x, vec.load(r, i, mask), s) for r, s in zip(rows, sums)]

    sums = vec.loop(vec.index(0), n_full, [ir.Constant(vec.vty, [0.0] * vec.lanes)] * block, dots)
    sums = dots(n_full, sums, mask)
    eps = vec.splat(context.cast(builder, args[5], sig.args[5], sig.args[1].dtype), block)
    weights_vec = vec.div(count_vec, vec.add(vec.lane_sums(sums), eps))
    weights = [vec.splat(builder.extract_element(weights_vec, ir.Constant(ir.IntType(32), b))) for b in range(block)]

    def axpy(i, carried, mask=None):  # type: ignore[no-untyped-def]
        a = vec.load(acc, i, mask)
        for r, w in zip(rows, weights):
            a = vec.fmuladd(w, vec.load(r, i, mask), a)
        vec.store(a, acc, i, mask)
        return []

    vec.loop(vec.index(0), n_full, [], axpy)
    axpy(n_full, [], mask)
    return context.get_dummy_value()


def _entry_block(block: int):  # type: ignore[no-untyped-def]
    """An intrinsic ``f(eth, exp_elogbeta, ids, counts, j, eps, acc)`` that adds the ``block`` entries j, j+1, …
    of a document to ``acc``, as the loop of the numpy equivalent::

        for v, c in zip(ids[j:j + block], counts[j:j + block]):
            acc += c / (eth @ exp_elogbeta[v] + eps) * exp_elogbeta[v]

    The ``block`` dot products run side by side over explicit vectors (:class:`~distlda.kernels.vectorir.VectorIR`;
    independent chains keep both FMA units busy and ``eth`` is read once for all), their lane sums are added up
    together and the weights divided as one vector, then the accumulation reads and writes each vector of ``acc``
    once for all ``block`` rows."""

    @intrinsic
    def add_entries(typingctx, eth, table, ids, counts, j, eps, acc):  # type: ignore[no-untyped-def]
        arrays = (eth, table, ids, counts, acc)
        # the code reads rows, eth, acc and the counts as contiguous memory: refuse any other layout at compile time
        if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays) or table.ndim != 2:
            return None
        if not eth.dtype == counts.dtype == acc.dtype == table.dtype or not isinstance(ids.dtype, types.Integer):
            return None

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return _entry_block_codegen(context, builder, signature, args, block)

        return types.none(eth, table, ids, counts, j, eps, acc), codegen

    return add_entries


_add_8_entries = _entry_block(8)
_add_4_entries = _entry_block(4)
_add_2_entries = _entry_block(2)
_add_1_entry = _entry_block(1)


@njit(**INLINE)
def _add_entries(x: np.ndarray, table: np.ndarray, rows: np.ndarray, counts: np.ndarray, first: int, last: int,
                 eps: float, acc: np.ndarray) -> None:
    """acc += Σ_j counts[j] / (x · table[rows[j]] + ε) · table[rows[j]] over first <= j < last, in blocks of 8
    entries (then 4, 2, 1 for the rest): eight rows side by side fill the vector units, and ``x`` and ``acc`` are
    read once per block instead of once per entry."""
    j = first
    while j + 8 <= last:
        _add_8_entries(x, table, rows, counts, j, eps, acc)
        j += 8
    if j + 4 <= last:
        _add_4_entries(x, table, rows, counts, j, eps, acc)
        j += 4
    if j + 2 <= last:
        _add_2_entries(x, table, rows, counts, j, eps, acc)
        j += 2
    if j < last:
        _add_1_entry(x, table, rows, counts, j, eps, acc)


ALIGN = 64
"""Bytes to which the E-step aligns its rows: a 512-bit load that straddles two cache lines costs two."""


@njit(**INLINE)
def _aligned_zeros(n: int, dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
    """n zeros whose first element is ALIGN-byte aligned."""
    buf = np.zeros(n + ALIGN, dtype)  # ALIGN elements of slack: more than enough for any item size
    start = ((ALIGN - buf.ctypes.data % ALIGN) % ALIGN) // buf.itemsize
    return buf[start:start + n]


@njit(cache=True, nogil=True)
def _chunk_rows(ids: np.ndarray, exp_elogbeta: np.ndarray, lanes: int) -> tuple:
    """The rows of exp(E[log β]) a chunk uses, copied into an aligned table padded with zeros to a multiple of
    ``lanes`` columns, and the chunk's ids as rows of that table (words in the order first met).

    Every row then starts on a cache line and has no partial vector, whatever K is; the copy costs K values per
    distinct word of the chunk, once, against 2·K multiply-adds per entry at every iteration.
    """
    V, K = exp_elogbeta.shape
    slot = np.full(V, -1, dtype=np.int32)
    local = np.empty(ids.shape[0], dtype=np.int32)
    words = np.empty(ids.shape[0], dtype=np.int32)
    n = 0
    for j in range(ids.shape[0]):
        v = ids[j]
        if slot[v] < 0:
            slot[v] = n
            words[n] = v
            n += 1
        local[j] = slot[v]
    width = (K + lanes - 1) // lanes * lanes
    table = _aligned_zeros(n * width, exp_elogbeta.dtype).reshape(n, width)
    for t in range(n):
        table[t, :K] = exp_elogbeta[words[t]]
    return table, local


@njit(**INLINE)
def _start_document(d: int, indptr: np.ndarray, keys: np.ndarray, alpha: np.ndarray, gamma: np.ndarray,
                    eth: np.ndarray, iters_used: np.ndarray) -> bool:
    """γ of document d at its start (from its key) and its exp(E[log θ]); an empty document gets α, 0 iterations,
    and False (nothing to iterate)."""
    g = gamma[d]
    if indptr[d] == indptr[d + 1]:
        g[:] = alpha
        iters_used[d] = 0
        return False
    for k in range(g.shape[0]):
        g[k] = gamma_init_value(keys[d], k)
    _theta_from_gamma(g, eth)
    return True


@njit(**INLINE)
def _accumulate(first: int, last: int, ids: np.ndarray, counts: np.ndarray, table: np.ndarray, eth: np.ndarray,
                acc: np.ndarray) -> None:
    """acc = Σ over the document's entries of count / (eth · β_v + ε) · β_v."""
    acc[:] = 0.0
    _add_entries(eth, table, ids, counts, first, last, np.finfo(table.dtype).eps, acc)


@njit(**INLINE)
def _update_gamma(g: np.ndarray, alpha: np.ndarray, acc: np.ndarray, eth: np.ndarray, threshold: float) -> bool:
    """γ = α + eth · acc, then eth = exp(E[log θ]) of the new γ; True when the mean |Δγ| fell below
    ``threshold``."""
    K = g.shape[0]
    change = 0.0
    total = 0.0
    for k in range(K):  # the update of γ, and the two sums the next steps need, in one pass
        new = alpha[k] + eth[k] * acc[k]
        change += abs(new - g[k])
        total += new
        g[k] = new
    exp_digamma_minus_rows(g, eth, digamma(total))
    return change < threshold * K


@njit(**_KW)
def _estep_gamma_range(indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, exp_elogbeta: np.ndarray,
                alpha: np.ndarray, keys: np.ndarray, iterations: int, threshold: float,
                gamma: np.ndarray, iters_used: np.ndarray, lo: int, hi: int) -> None:
    """Fit γ of every document of a CSR chunk (phase 1 of the E-step).

    Parameters
    ----------
    indptr, ids, counts : numpy.ndarray
        The chunk; ``counts`` in the dtype of ``exp_elogbeta``; ``ids`` index the rows of ``exp_elogbeta``.
    exp_elogbeta : numpy.ndarray, shape (V', K')
        exp(E[log β]), word-major; ``K' >= K`` (columns past K must be 0).
    alpha : numpy.ndarray, shape (K,)
        Dirichlet prior on document-topic weights, dtype of ``exp_elogbeta``.
    keys : numpy.ndarray of uint64, shape (n_docs,)
        Per-document random keys (see :mod:`distlda.kernels.rng`).
    iterations : int
        Maximum fixed-point iterations per document.
    threshold : float
        Stop a document when the mean absolute change of γ falls below this.
    gamma : numpy.ndarray, shape (n_docs, K)
        Output.
    iters_used : numpy.ndarray of int32, shape (n_docs,)
        Output: iterations each document took.
    """
    n = indptr.shape[0] - 1
    width = exp_elogbeta.shape[1]
    mode = flush_subnormals()
    for b in range(lo, hi):
        # two documents at a time, each with its own buffers: every step of one document waits on the one
        # before it, and the other document's independent work fills those waits
        eth = (_aligned_zeros(width, exp_elogbeta.dtype), _aligned_zeros(width, exp_elogbeta.dtype))
        acc = (_aligned_zeros(width, exp_elogbeta.dtype), _aligned_zeros(width, exp_elogbeta.dtype))
        stop = min((b + 1) * DOC_BLOCK, n)
        for d0 in range(b * DOC_BLOCK, stop, 2):
            d1 = d0 + 1
            on0 = _start_document(d0, indptr, keys, alpha, gamma, eth[0], iters_used)
            on1 = d1 < stop and _start_document(d1, indptr, keys, alpha, gamma, eth[1], iters_used)
            it = 0
            while (on0 or on1) and it < iterations:
                it += 1
                if on0:
                    _accumulate(indptr[d0], indptr[d0 + 1], ids, counts, exp_elogbeta, eth[0], acc[0])
                if on1:
                    _accumulate(indptr[d1], indptr[d1 + 1], ids, counts, exp_elogbeta, eth[1], acc[1])
                if on0 and _update_gamma(gamma[d0], alpha, acc[0], eth[0], threshold):
                    on0 = False
                    iters_used[d0] = it
                if on1 and _update_gamma(gamma[d1], alpha, acc[1], eth[1], threshold):
                    on1 = False
                    iters_used[d1] = it
            if on0:
                iters_used[d0] = it
            if on1:
                iters_used[d1] = it
    restore_fp_mode(mode)


@njit(**_KW)
def _expected_theta_range(gamma: np.ndarray, eth: np.ndarray, lo: int, hi: int) -> None:
    """eth[d] = exp(E[log θ_d]) for every row of γ."""
    n = gamma.shape[0]
    mode = flush_subnormals()
    for b in range(lo, hi):
        for d in range(b * DOC_BLOCK, min((b + 1) * DOC_BLOCK, n)):
            _theta_from_gamma(gamma[d], eth[d])
    restore_fp_mode(mode)


@njit(cache=True, nogil=True)
def word_order(indptr: np.ndarray, ids: np.ndarray, num_terms: int) -> tuple:
    """Group a chunk's entries by word, keeping document order within each word.

    Returns
    -------
    words : numpy.ndarray of int32
        The distinct words of the chunk, ascending.
    word_ptr : numpy.ndarray of int64, shape (len(words) + 1,)
        Entries of ``words[t]`` are ``order[word_ptr[t]:word_ptr[t+1]]``.
    order : numpy.ndarray of int64, shape (nnz,)
        Entry positions grouped by word.
    entry_doc : numpy.ndarray of int32, shape (nnz,)
        The document (row in the chunk) of each position of ``order``.
    """
    n = indptr.shape[0] - 1
    nnz = ids.shape[0]
    count = np.zeros(num_terms + 1, dtype=np.int64)
    for j in range(nnz):
        count[ids[j] + 1] += 1
    n_words = 0
    for v in range(num_terms):
        if count[v + 1] > 0:
            n_words += 1
        count[v + 1] += count[v]
    words = np.empty(n_words, dtype=np.int32)
    word_ptr = np.empty(n_words + 1, dtype=np.int64)
    t = 0
    for v in range(num_terms):
        if count[v + 1] > count[v]:
            words[t] = v
            word_ptr[t] = count[v]
            t += 1
    word_ptr[n_words] = nnz
    order = np.empty(nnz, dtype=np.int64)
    entry_doc = np.empty(nnz, dtype=np.int32)
    for d in range(n):
        for j in range(indptr[d], indptr[d + 1]):
            v = ids[j]
            pos = count[v]
            order[pos] = j
            entry_doc[pos] = d
            count[v] = pos + 1
    return words, word_ptr, order, entry_doc


@njit(**_KW)
def _word_stats_range(words: np.ndarray, word_ptr: np.ndarray, entry_doc: np.ndarray, word_counts: np.ndarray,
                      exp_elogbeta: np.ndarray, eth: np.ndarray, raw: np.ndarray, lo: int, hi: int) -> None:
    """raw[v, :] += Σ_j w_j · eth[doc(j), :] over the entries j of each word v (phase 2), where the entry's
    weight w_j = count_j / (eth[doc(j)] · exp_elogbeta[v] + ε) is its count over its normaliser, as in the E-step.

    Each word's row is summed by one thread in document order, so the result is the same whatever
    the number of threads. The word's exp(E[log β]) row plays the part a document's exp(E[log θ]) plays in
    phase 1, and the documents' exp(E[log θ]) rows that of the words' rows.
    """
    eps = np.finfo(exp_elogbeta.dtype).eps
    mode = flush_subnormals()  # the products of small θ and β are as slow here as in phase 1
    for t in range(lo, hi):
        v = words[t]
        _add_entries(exp_elogbeta[v], eth, entry_doc, word_counts, word_ptr[t], word_ptr[t + 1], eps, raw[v])
    restore_fp_mode(mode)


@njit(**_KW)
def _elogtheta_rows_range(gamma: np.ndarray, out: np.ndarray, lo: int, hi: int) -> None:
    """out[d, k] = ψ(γ_dk) − ψ(Σ_k γ_dk), in float64."""
    n, K = gamma.shape
    for d in range(lo, hi):
        s = 0.0
        for k in range(K):
            s += gamma[d, k]
        c = digamma(s)
        for k in range(K):
            out[d, k] = digamma(gamma[d, k]) - c


@njit(cache=True, nogil=True)
def add_rows_in_order(rows: np.ndarray, acc: np.ndarray) -> None:
    """acc += Σ_d rows[d], added one row at a time in order (deterministic for any grouping)."""
    n, K = rows.shape
    for d in range(n):
        for k in range(K):
            acc[k] += rows[d, k]


def _doc_blocks(n: int) -> int:
    return (int(n) + DOC_BLOCK - 1) // DOC_BLOCK


def estep_gamma(indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, exp_elogbeta: np.ndarray, alpha: np.ndarray,
                keys: np.ndarray, iterations: int, threshold: float, gamma: np.ndarray,
                iters_used: np.ndarray) -> None:
    """Fit γ of every document of a CSR chunk, in parallel over blocks of documents (see :func:`_estep_gamma_range`),
    on an aligned, padded copy of the rows of ``exp_elogbeta`` the chunk uses (see :func:`_chunk_rows`)."""
    table, local_ids = _chunk_rows(ids, exp_elogbeta, ALIGN // exp_elogbeta.itemsize)
    parallel_for(_estep_gamma_range, _doc_blocks(indptr.shape[0] - 1), indptr, local_ids, counts, table, alpha, keys,
                 iterations, threshold, gamma, iters_used)


def expected_theta(gamma: np.ndarray, eth: np.ndarray) -> None:
    """eth[d] = exp(E[log θ_d]) for every row of γ, in parallel."""
    parallel_for(_expected_theta_range, _doc_blocks(gamma.shape[0]), gamma, eth)


def word_stats(words: np.ndarray, word_ptr: np.ndarray, order: np.ndarray, entry_doc: np.ndarray,
               counts: np.ndarray, exp_elogbeta: np.ndarray, eth: np.ndarray, raw: np.ndarray) -> None:
    """raw[v, :] += the statistics of each word's entries, in parallel over words (see the range kernel)."""
    word_counts = counts[order]  # the counts in the order of the entries, so that a block reads them in one load
    parallel_for(_word_stats_range, words.shape[0], words, word_ptr, entry_doc, word_counts, exp_elogbeta, eth, raw)


def elogtheta_rows(gamma: np.ndarray, out: np.ndarray) -> None:
    """out[d, k] = ψ(γ_dk) − ψ(Σ_k γ_dk), in float64, in parallel over documents."""
    parallel_for(_elogtheta_rows_range, gamma.shape[0], gamma, out)
