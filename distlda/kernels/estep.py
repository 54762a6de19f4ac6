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
(:class:`~distlda.kernels.vectorir.EntryIR`): for 8 entries at a time, 8 dot
products against one vector, a vector of 8 divisions, and 8 scaled rows added
into one accumulator, in explicit LLVM vectors (8 or 16 lanes, chosen for the CPU:
:func:`~distlda.kernels.vectorir.vector_bits`) whose last vector of a row is
masked (phase 2), so every K runs at the vector rate with no scalar tail. A
document's (phase 1) or a word's (phase 2) whole loop over its blocks is one
intrinsic (:mod:`distlda.kernels.entries`): no reference counting between blocks.
Phase 1 reads a copy of the rows its chunk uses, each padded to whole vectors (so
it needs no mask) and aligned on a cache line (:func:`_chunk_rows`; a vector load
across two lines costs two); while a document's rows fit in L1 it computes all
its weights before adding its rows up (the same bits, without each block's sums
waiting on its division); it fits SIDE_BY_SIDE documents side by side so that
the others' work fills each one's waits; and it updates γ and computes
exp(ψ(γ) − ψ(Σγ)) in two vector calls per iteration (:func:`_gamma_step`,
:func:`~distlda.kernels.special.exp_digamma_normalised_rows`, which needs no
logarithm in float32). The kernels run with subnormals flushed
(:func:`~distlda.kernels.fpmode.flush_subnormals`): products of tiny θ and β
made K = 50 and 64 several times slower than K = 100.

Phase 1 also skips, in each document, the vectors of its exp(E[log θ]) that are
exactly zero (:func:`~distlda.kernels.entries.accumulate_active`), with the bits of
the dense loop: such a vector adds exact zeros to every dot product, and its γ is
α + 0 · acc with acc = 0 there (for a finite α; an infinite one spreads NaN through
the dense loop and not here). In float32 a topic's exp(E[log θ]) underflows to 0
once its γ is below about 1/87, which is most topics of a short document when α
is small (α = 1/K at K ≥ 100): on ``bench/kernel_speed.py``'s 12,000 Debian
documents at 20 iterations, phase 1 computes 67% of the dense work at K = 100 and
24% at K = 1000 with 8-lane vectors (``vectors_used``). Measured by ``bench/kernel_speed.py``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from distlda.kernels.compile import INLINE, KERNEL
from distlda.kernels.entries import accumulate_active, add_entries, lanes_of, nonzero_vectors
from distlda.kernels.fpmode import flush_subnormals, restore_fp_mode
from distlda.kernels.vectorir import VectorIR
from distlda.kernels.parallel import parallel_for
from distlda.kernels.rng import gamma_init_value
from distlda.kernels.special import digamma, exp_digamma_normalised_rows

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

SIDE_BY_SIDE = 4
"""Documents phase 1 fits side by side (a multiple of it divides DOC_BLOCK)."""

_KW = KERNEL


@njit(**INLINE)
def _theta_from_gamma(gamma_row: np.ndarray, eth: np.ndarray) -> None:
    """eth[k] = exp(ψ(γ_k) − ψ(Σ γ)) for one document."""
    K = gamma_row.shape[0]
    s = 0.0
    for k in range(K):
        s += gamma_row[k]
    exp_digamma_normalised_rows(gamma_row, eth, s)


ALIGN = 64
"""Bytes to which the E-step aligns and pads its rows: a vector load that straddles two cache lines costs two, and a
row of whole cache lines is a whole number of vectors of any width the kernels use (at most 512 bits)."""


@njit(**INLINE)
def _aligned_zeros(n: int, dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
    """n zeros whose first element is ALIGN-byte aligned."""
    buf = np.zeros(n + ALIGN, dtype)  # ALIGN elements of slack: more than enough for any item size
    start = ((ALIGN - buf.ctypes.data % ALIGN) % ALIGN) // buf.itemsize
    return buf[start:start + n]


@njit(cache=True, nogil=True)
def _chunk_words(ids: np.ndarray, num_terms: int) -> tuple:
    """The distinct words of a chunk in the order first met, and the chunk's ids as indices into them."""
    slot = np.full(num_terms, -1, dtype=np.int32)
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
    return words[:n], local


@njit(**_KW)
def _copy_rows_range(words: np.ndarray, exp_elogbeta: np.ndarray, table: np.ndarray, lo: int, hi: int) -> None:
    """table[t, :K] = exp_elogbeta[words[t]] for lo <= t < hi."""
    K = exp_elogbeta.shape[1]
    for t in range(lo, hi):
        table[t, :K] = exp_elogbeta[words[t]]


def _chunk_rows(ids: np.ndarray, exp_elogbeta: np.ndarray) -> tuple:
    """The rows of exp(E[log β]) a chunk uses, copied into an aligned table padded with zeros to whole cache lines
    (:data:`ALIGN`), and the chunk's ids as rows of that table (words in the order first met).

    Every row then starts on a cache line and has no partial vector, whatever K is; the copy costs K values per
    distinct word of the chunk, once, against 2·K multiply-adds per entry at every iteration, and runs on the
    kernels' threads (at K = 1000 it was 8% of a one-thread phase 1 when serial).
    """
    V, K = exp_elogbeta.shape
    words, local = _chunk_words(ids, V)
    line = ALIGN // exp_elogbeta.itemsize
    width = (K + line - 1) // line * line
    table = _aligned_zeros(words.shape[0] * width, exp_elogbeta.dtype).reshape(words.shape[0], width)
    parallel_for(_copy_rows_range, words.shape[0], words, exp_elogbeta, table)
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


@intrinsic
def _gamma_step(typingctx, g, alpha, acc, eth):  # type: ignore[no-untyped-def]
    """g = α + eth · acc over the K = len(g) topics, in vectors; returns (Σ |Δg|, Σ g) as float64 (each summed
    lane-wise, then across lanes in a fixed order)."""
    arrays = (g, alpha, acc, eth)
    if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1 and a.dtype == g.dtype
               for a in arrays) or g.dtype not in (types.float32, types.float64):
        return None
    result = types.UniTuple(types.float64, 2)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vec = VectorIR(context, builder, signature.args[0].dtype)
        g_ptr, a_ptr, acc_ptr, eth_ptr = (context.make_array(t)(context, builder, v).data
                                          for t, v in zip(signature.args, args))
        g_shape = context.make_array(signature.args[0])(context, builder, args[0]).shape
        n_full, mask = vec.row_vectors(cgutils.unpack_tuple(builder, g_shape, 1)[0])

        def step(i, carried, mask=None):  # type: ignore[no-untyped-def]
            old = vec.load(g_ptr, i, mask)
            new = vec.fmuladd(vec.load(eth_ptr, i, mask), vec.load(acc_ptr, i, mask), vec.load(a_ptr, i, mask))
            vec.store(new, g_ptr, i, mask)
            return [vec.add(carried[0], vec.abs(vec.sub(new, old))), vec.add(carried[1], new)]

        sums = vec.loop(vec.index(0), n_full, [vec.const(0.0)] * 2, step)
        sums = vec.lane_sums(step(n_full, sums, mask))
        change, total = (context.cast(builder, builder.extract_element(sums, ir.Constant(ir.IntType(32), b)),
                                      signature.args[0].dtype, types.float64) for b in (0, 1))
        return context.make_tuple(builder, result, [change, total])

    return result(g, alpha, acc, eth), codegen


@njit(**INLINE)
def _update_gamma(g: np.ndarray, alpha: np.ndarray, acc: np.ndarray, eth: np.ndarray, threshold: float) -> bool:
    """γ = α + eth · acc, then eth = exp(E[log θ]) of the new γ; True when the mean |Δγ| fell below
    ``threshold``."""
    change, total = _gamma_step(g, alpha, acc, eth)
    exp_digamma_normalised_rows(g, eth, total)
    return change < threshold * g.shape[0]


@njit(**_KW)
def _estep_gamma_range(indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, exp_elogbeta: np.ndarray,
                alpha: np.ndarray, keys: np.ndarray, iterations: int, threshold: float,
                gamma: np.ndarray, iters_used: np.ndarray, vectors_used: np.ndarray, weights: np.ndarray, lo: int,
                hi: int) -> None:
    """Fit γ of every document of a CSR chunk (phase 1 of the E-step).

    Parameters
    ----------
    indptr, ids, counts : numpy.ndarray
        The chunk; ``counts`` in the dtype of ``exp_elogbeta``; ``ids`` index the rows of ``exp_elogbeta``.
    exp_elogbeta : numpy.ndarray, shape (V', K')
        exp(E[log β]), word-major; ``K' >= K`` a whole number of vectors (columns past K must be 0).
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
    vectors_used : numpy.ndarray of int64, shape (n_docs,)
        Output: the vectors of the rows each document's entries ran over, summed over its iterations (every
        vector of ``K'`` at each iteration, less the ones skipped).
    weights : numpy.ndarray, shape (nnz,)
        Scratch: the entries' weights of the current iteration (each document uses its own entries' places).
    """
    n = indptr.shape[0] - 1
    width = exp_elogbeta.shape[1]
    lanes = lanes_of(exp_elogbeta)
    vectors = width // lanes
    if vectors * lanes != width:
        raise ValueError("the rows of exp_elogbeta must be a whole number of vectors long (see _chunk_rows)")
    eps = np.finfo(exp_elogbeta.dtype).eps
    mode = flush_subnormals()
    # SIDE_BY_SIDE documents at a time, each with its own rows of eth and acc: every step of a document waits on
    # the one before it, and the others' independent work fills those waits
    eth = _aligned_zeros(SIDE_BY_SIDE * width, exp_elogbeta.dtype).reshape(SIDE_BY_SIDE, width)
    acc = _aligned_zeros(SIDE_BY_SIDE * width, exp_elogbeta.dtype).reshape(SIDE_BY_SIDE, width)
    # each document's vectors of eth with a lane other than 0: the others add exact zeros to the dot products, and
    # their γ is α + 0 · acc with acc zeroed there, so the entries skip them (see accumulate_active)
    active = np.empty((SIDE_BY_SIDE, vectors), dtype=np.int32)
    n_active = np.zeros(SIDE_BY_SIDE, dtype=np.int64)
    for b in range(lo, hi):
        stop = min((b + 1) * DOC_BLOCK, n)
        for first in range(b * DOC_BLOCK, stop, SIDE_BY_SIDE):
            docs = min(SIDE_BY_SIDE, stop - first)
            on = 0  # bit s: document first + s is still iterating
            for s in range(docs):
                vectors_used[first + s] = 0
                if _start_document(first + s, indptr, keys, alpha, gamma, eth[s], iters_used):
                    on |= 1 << s
                    n_active[s] = nonzero_vectors(eth[s], active[s])
            it = 0
            while on != 0 and it < iterations:
                it += 1
                for s in range(docs):
                    if on >> s & 1:
                        d = first + s
                        vectors_used[d] += n_active[s]
                        accumulate_active(eth[s], exp_elogbeta, ids, counts, indptr[d], indptr[d + 1], eps, weights,
                                           active[s], n_active[s], acc[s])
                for s in range(docs):
                    if on >> s & 1:
                        if _update_gamma(gamma[first + s], alpha, acc[s], eth[s], threshold):
                            on ^= 1 << s
                            iters_used[first + s] = it
                        else:
                            n_active[s] = nonzero_vectors(eth[s], active[s])
            for s in range(docs):
                if on >> s & 1:
                    iters_used[first + s] = it
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
                      exp_elogbeta: np.ndarray, eth: np.ndarray, raw: np.ndarray, rows: np.ndarray, lo: int,
                      hi: int) -> None:
    """raw[rows[t], :] += P_t, where P_t = Σ_j w_j · eth[doc(j), :] is summed from zero over the entries j of word
    v = words[t] (phase 2), and the entry's weight w_j = count_j / (eth[doc(j)] · exp_elogbeta[v] + ε) is its count
    over its normaliser, as in the E-step. P_t is the word's row of the chunk's *partial* statistics: added to a
    batch's rows it gives the bits that adding the partial reduced alone (into zeros) gives.

    Each word's row is summed by one thread in document order, so the result is the same whatever
    the number of threads. The word's exp(E[log β]) row plays the part a document's exp(E[log θ]) plays in
    phase 1, and the documents' exp(E[log θ]) rows that of the words' rows.
    """
    eps = np.finfo(exp_elogbeta.dtype).eps
    K = raw.shape[1]
    partial = np.empty(K, dtype=raw.dtype)
    mode = flush_subnormals()  # the products of small θ and β are as slow here as in phase 1
    for t in range(lo, hi):
        v = words[t]
        for k in range(K):
            partial[k] = 0.0
        add_entries(exp_elogbeta[v], eth, entry_doc, word_counts, word_ptr[t], word_ptr[t + 1], eps, partial)
        out = raw[rows[t]]
        for k in range(K):
            out[k] += partial[k]
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
                iters_used: np.ndarray, vectors_used: np.ndarray | None = None) -> None:
    """Fit γ of every document of a CSR chunk, in parallel over blocks of documents (see :func:`_estep_gamma_range`,
    which also says what ``vectors_used`` counts), on an aligned copy of the rows of ``exp_elogbeta`` the chunk
    uses, padded to whole vectors (see :func:`_chunk_rows`)."""
    table, local_ids = _chunk_rows(ids, exp_elogbeta)
    weights = np.empty(ids.shape[0], dtype=exp_elogbeta.dtype)
    if vectors_used is None:
        vectors_used = np.empty(indptr.shape[0] - 1, dtype=np.int64)
    parallel_for(_estep_gamma_range, _doc_blocks(indptr.shape[0] - 1), indptr, local_ids, counts, table, alpha, keys,
                 iterations, threshold, gamma, iters_used, vectors_used, weights)


def expected_theta(gamma: np.ndarray, eth: np.ndarray) -> None:
    """eth[d] = exp(E[log θ_d]) for every row of γ, in parallel."""
    parallel_for(_expected_theta_range, _doc_blocks(gamma.shape[0]), gamma, eth)


def word_stats(words: np.ndarray, word_ptr: np.ndarray, order: np.ndarray, entry_doc: np.ndarray,
               counts: np.ndarray, exp_elogbeta: np.ndarray, eth: np.ndarray, raw: np.ndarray,
               rows: np.ndarray) -> None:
    """raw[rows[t], :] += the statistics of the entries of word ``words[t]``, summed from zero, in parallel over
    words (see the range kernel). ``rows`` (int32) are distinct: the chunk's own compact rows (0, 1, …), or a
    batch's rows of those words, dense (the words themselves) or compact."""
    word_counts = counts[order]  # the counts in the order of the entries, so that a block reads them in one load
    parallel_for(_word_stats_range, words.shape[0], words, word_ptr, entry_doc, word_counts, exp_elogbeta, eth, raw,
                 rows)


def elogtheta_rows(gamma: np.ndarray, out: np.ndarray) -> None:
    """out[d, k] = ψ(γ_dk) − ψ(Σ_k γ_dk), in float64, in parallel over documents."""
    parallel_for(_elogtheta_rows_range, gamma.shape[0], gamma, out)
