"""The E-step as the training loop sees it: fit γ for chunks, reduce them into batch statistics.

:class:`BatchStats` is what one mini-batch yields (raw word-major statistics,
document count, Σ E[log θ]); :class:`BatchAccumulator` builds one from chunks and
their fitted γ in document order, which is what makes the result independent of
threads and workers; :class:`LocalEStep` is the backend that does all of it in
this process with all cores. The distributed backend implements the same three
methods (``start_batch``, ``submit``, ``collect``) over workers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from distlda.corpora.csr import CsrChunk
from distlda.validation import is_integer
from distlda.kernels import estep as K_
from distlda.kernels.parallel import kernel_threads, max_threads
from distlda.kernels.rng import training_keys

logger = logging.getLogger(__name__)

__all__ = ["EStepParams", "BatchStats", "ChunkPartial", "chunk_partial", "sum_partials", "fit_documents", "join_gammas",
           "BatchAccumulator", "EStepBackend", "LocalEStep", "TrainingStats", "fit_gamma", "resolve_threads",
           "kernel_threads"]


def resolve_threads(threads: int | None) -> int:
    """The number of threads to use: ``None`` means every core this process may use."""
    limit = max_threads()
    if threads is None:
        return limit
    if not is_integer(threads):
        raise TypeError(f"threads must be a positive integer or None, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return min(int(threads), limit)


@dataclass(frozen=True)
class EStepParams:
    """Everything a process needs to run the E-step of one mini-batch.

    ``exp_elogbeta`` is exp(E[log β]) word-major (V × K) and ``alpha`` the current
    document-topic prior, both of the model dtype. With a lazy M-step
    (:class:`distlda.core.mstep.LazyTopics`) the rows of ``exp_elogbeta`` are brought up to
    date only when needed: ``refresh(ids)`` does it for the words ``ids`` of a chunk, and must be
    called before the chunk is fitted or reduced; the batch is then reduced sparsely.
    """

    exp_elogbeta: np.ndarray
    alpha: np.ndarray
    iterations: int
    gamma_threshold: float
    seed: int
    collect_elogtheta: bool = False
    refresh: Callable[[np.ndarray], None] | None = None

    def __post_init__(self) -> None:
        # writable, aligned, C-contiguous: the kernels get one kind of array (see CsrChunk.for_kernels)
        exp_elogbeta = np.require(self.exp_elogbeta, requirements="CAW")
        object.__setattr__(self, "exp_elogbeta", exp_elogbeta)
        object.__setattr__(self, "alpha", np.require(self.alpha, exp_elogbeta.dtype, "CAW"))

    dtype = property(lambda self: self.exp_elogbeta.dtype, doc="The model's dtype.")
    num_terms = property(lambda self: int(self.exp_elogbeta.shape[0]), doc="V.")
    num_topics = property(lambda self: int(self.exp_elogbeta.shape[1]), doc="K.")


def fit_gamma(chunk: CsrChunk, exp_elogbeta: np.ndarray, alpha: np.ndarray, keys: np.ndarray,
              iterations: int, gamma_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Phase 1 of the E-step: γ (n × K) and the iterations each document took."""
    chunk = chunk.for_kernels(exp_elogbeta.dtype)
    exp_elogbeta = np.require(exp_elogbeta, requirements="CAW")  # one compiled version of the kernel (see CsrChunk.for_kernels)
    alpha = np.require(alpha, exp_elogbeta.dtype, "CAW")
    keys = np.require(keys, np.uint64, "CAW")
    gamma = np.empty((chunk.n_docs, exp_elogbeta.shape[1]), dtype=exp_elogbeta.dtype)
    iters = np.empty(chunk.n_docs, dtype=np.int32)
    K_.estep_gamma(chunk.indptr, chunk.ids, chunk.counts, exp_elogbeta, alpha, keys, int(iterations),
                   float(gamma_threshold), gamma, iters)
    return gamma, iters


def fit_documents(chunk: CsrChunk, exp_elogbeta: np.ndarray, alpha: np.ndarray, seed: int, pass_: int,
                  iterations: int, gamma_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_gamma` of a training chunk, with its documents' keys for ``(seed, pass_)``: what a local run, a
    worker's job, a Dask task and a replica fitting a lost job again all compute, so the same bits."""
    keys = training_keys(int(seed), int(pass_), chunk.start, chunk.n_docs)
    return fit_gamma(chunk, exp_elogbeta, alpha, keys, int(iterations), float(gamma_threshold))


def join_gammas(gammas: list[np.ndarray], n_docs: int, num_topics: int) -> np.ndarray:
    """γ of a chunk from the γ of its consecutive pieces (as fitted by several workers)."""
    if len(gammas) == 1:
        return gammas[0]
    if not gammas:
        return np.empty((n_docs, num_topics))
    return np.concatenate(gammas)


@dataclass
class BatchStats:
    """Sufficient statistics of one mini-batch.

    Attributes
    ----------
    raw : numpy.ndarray, shape (V, K), or None
        Σ over entries of w_j · exp(E[log θ_d]), word-major; the batch's sstats
        are ``raw.T * expElogbeta`` (the M-step kernel folds that in). None when
        the batch's M-step was applied elsewhere (by a cluster's workers).
    numdocs : int
        Documents in the batch (empty ones included, as gensim counts them).
    elogtheta_sum : numpy.ndarray of float64, shape (K,) or None
        Σ_d E[log θ_d], when the prior alpha is learned.
    version : int or None
        On a cluster: the version of the model (M-steps since the start of the update) the batch's M-step made.
    rows : numpy.ndarray of int64 or None
        When set (a sparse accumulator's result), ``raw`` holds only these rows, the words the batch touched
        (ascending): ``raw[t]`` is the row of word ``rows[t]``.
    """

    raw: np.ndarray | None
    numdocs: int = 0
    elogtheta_sum: np.ndarray | None = None
    words: float = 0.0
    version: int | None = None
    rows: np.ndarray | None = None


@dataclass(frozen=True)
class ChunkPartial:
    """The statistics of one chunk alone (its *partial*): the raw rows of the words the chunk uses, summed from zero.

    A batch's statistics are its chunks' partials added in chunk order (:class:`BatchAccumulator`), so whoever
    computes a chunk's partial — the client, the worker that fitted the chunk, a replica — the sums round the same
    way, and a row's total can be made by any process that gathers that row of every partial (a reduce-scatter).

    Attributes
    ----------
    words : numpy.ndarray of int64
        The chunk's distinct words, ascending.
    raw : numpy.ndarray, shape (len(words), K)
        ``raw[t]``: Σ over the entries of word ``words[t]`` of w_j · exp(E[log θ_d]), in document order.
    """

    words: np.ndarray
    raw: np.ndarray

    def rows_between(self, lo: int, hi: int) -> "ChunkPartial":
        """The rows of the words ``lo <= v < hi`` (views, no copy)."""
        a, b = np.searchsorted(self.words, [lo, hi])
        return ChunkPartial(self.words[a:b], self.raw[a:b])


def chunk_partial(chunk: CsrChunk, gamma: np.ndarray, exp_elogbeta: np.ndarray) -> ChunkPartial:
    """The partial statistics of ``chunk`` given its fitted ``gamma`` (phase 2 of the E-step, one chunk)."""
    def own_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = np.zeros((words.shape[0], exp_elogbeta.shape[1]), dtype=exp_elogbeta.dtype)
        return raw, np.arange(words.shape[0], dtype=np.int32)

    words, raw = _reduce_chunk(chunk, gamma, exp_elogbeta, own_rows)
    return ChunkPartial(words.astype(np.int64), raw)


def sum_partials(partials: list[ChunkPartial], lo: int, hi: int, num_topics: int, dtype: Any) -> ChunkPartial:
    """The rows of the words ``lo <= v < hi`` of a batch's statistics from its chunks' partials (their rows of those
    words), added in chunk order from zero: bitwise the rows :class:`BatchAccumulator` gives (the order that makes
    the sums of a cluster's reduce-scatter those of a local run)."""
    acc = np.zeros((hi - lo, num_topics), dtype=dtype)
    touched = np.zeros(hi - lo, dtype=bool)
    for partial in partials:  # chunk order
        rows = partial.words - lo
        acc[rows] += partial.raw  # the words are distinct: one addition per element
        touched[rows] = True
    words = np.flatnonzero(touched)
    return ChunkPartial(words + lo, acc[words])


def _reduce_chunk(chunk: CsrChunk, gamma: np.ndarray, exp_elogbeta: np.ndarray,
                  target: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Add the chunk's partial statistics to the rows ``rows`` of ``raw``, where ``raw, rows = target(words)`` for
    the chunk's words (ascending); returns the words and ``raw``."""
    exp_elogbeta = np.require(exp_elogbeta, requirements="CAW")
    chunk = chunk.for_kernels(exp_elogbeta.dtype)
    gamma = np.require(gamma, exp_elogbeta.dtype, "CAW")
    eth = np.empty_like(gamma)
    K_.expected_theta(gamma, eth)
    words, word_ptr, order, entry_doc = K_.word_order(chunk.indptr, chunk.ids, exp_elogbeta.shape[0])
    raw, rows = target(words)
    K_.word_stats(words, word_ptr, order, entry_doc, chunk.counts, exp_elogbeta, eth, raw,
                  np.require(rows, np.int32, "CAW"))
    return words, raw


@dataclass
class BatchAccumulator:
    """Reduces chunks and their γ into :class:`BatchStats`, strictly in document order.

    Each chunk's partial (:func:`chunk_partial`) is added in chunk order, so a row is the same sum whoever reduced
    which chunk (:func:`sum_partials` adds partials reduced elsewhere with the same bits). With ``sparse=True`` the
    statistics are kept only for the words the batch touches (a compact touched-words × K array instead of V × K);
    call :meth:`finish` before reading :attr:`stats`. Each touched word's row is the same sum in the same order, so it
    is bitwise the dense row.
    """

    params: EStepParams
    sparse: bool = False
    stats: BatchStats = field(init=False)
    _next_doc: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        K = self.params.num_topics
        self.stats = BatchStats(
            raw=np.zeros((0 if self.sparse else self.params.num_terms, K), dtype=self.params.dtype),
            elogtheta_sum=np.zeros(K, dtype=np.float64) if self.params.collect_elogtheta else None,
        )
        if self.sparse:
            self._slot = np.full(self.params.num_terms, -1, dtype=np.int32)  # word -> its row in the compact arrays
            self._words = np.empty(0, dtype=np.int64)

    def add(self, chunk: CsrChunk, gamma: np.ndarray) -> None:
        """Add the statistics of ``chunk`` given its fitted ``gamma`` (phase 2 of the E-step)."""
        if gamma.shape != (chunk.n_docs, self.params.num_topics):
            raise ValueError(f"gamma has shape {gamma.shape}, expected {(chunk.n_docs, self.params.num_topics)}")
        if self._next_doc is not None and chunk.start != self._next_doc:
            raise ValueError(f"chunks must be added in document order: expected document {self._next_doc}, "
                             f"got {chunk.start}")
        self._next_doc = chunk.start + chunk.n_docs
        # each word's partial row is summed from zero and added to the batch's row at once: the bits of adding
        # chunk_partial's rows, without the compact array between
        _reduce_chunk(chunk, gamma, self.params.exp_elogbeta, self._rows_of)
        self.stats.numdocs += chunk.n_docs
        self.stats.words += chunk.num_words()
        if self.stats.elogtheta_sum is not None:
            rows = np.empty(gamma.shape, dtype=np.float64)
            K_.elogtheta_rows(np.require(gamma, self.params.dtype, "CAW"), rows)
            K_.add_rows_in_order(rows, self.stats.elogtheta_sum)

    def _rows_of(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The batch's statistics and their rows of ``words`` (new compact rows are made first)."""
        rows = self._compact_rows(words) if self.sparse else words
        return self.stats.raw, rows

    def _compact_rows(self, words: np.ndarray) -> np.ndarray:
        """The compact rows of ``words``, given rows (of zeros) first if they are new."""
        new = words[self._slot[words] < 0]
        if new.size:
            n = self._words.shape[0]
            self._slot[new] = np.arange(n, n + new.size, dtype=np.int32)
            self._words = np.concatenate([self._words, new.astype(np.int64)])
            self.stats.raw = np.concatenate([self.stats.raw, np.zeros((new.size, self.stats.raw.shape[1]),
                                                                      dtype=self.stats.raw.dtype)])
        return self._slot[words]

    def finish(self) -> BatchStats:
        """The batch's statistics; a sparse accumulator's rows are put in word order (``stats.rows``)."""
        if self.sparse and self.stats.rows is None:
            order = np.argsort(self._words, kind="stable")
            self.stats.rows = self._words[order]
            self.stats.raw = np.ascontiguousarray(self.stats.raw[order])
            self._slot[self._words] = -1
        return self.stats


@dataclass
class TrainingStats:
    """Where the time (and, on a cluster, the bytes) of one ``update()`` went.

    Attributes
    ----------
    documents : int
        Documents through the E-step (all passes).
    msteps : int
        M-steps done.
    wall_seconds : float
        Wall time of the whole update.
    gamma_seconds : float
        Time fitting γ (phase 1 of the E-step), summed over workers on a cluster.
    reduce_seconds : float
        Time rebuilding the statistics from γ (phase 2).
    mstep_seconds : float
        Time in M-steps.
    wait_seconds : float
        On a cluster: time the client waited for the dispatcher and workers.
    bytes_sent, bytes_received : int
        On a cluster: payload bytes the client sent and received.
    syncs, sync_seconds : int, float
        On a cluster: times the client took the model from the workers, and the time it took.
    shares_taken : int
        On a Dask cluster: shares of mini-batches a worker fitted for a slower peer (work sharing).
    """

    documents: int = 0
    msteps: int = 0
    wall_seconds: float = 0.0
    gamma_seconds: float = 0.0
    reduce_seconds: float = 0.0
    mstep_seconds: float = 0.0
    wait_seconds: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    syncs: int = 0
    sync_seconds: float = 0.0
    shares_taken: int = 0

    def as_dict(self) -> dict[str, float]:
        from dataclasses import asdict

        return asdict(self)


class EStepBackend(Protocol):
    """What the training loop needs from an E-step backend (local or distributed)."""

    stats: TrainingStats

    def use_corpus(self, corpus: Any) -> None:
        """The corpus this run trains on (a cluster may send references into it instead of documents)."""

    def start_batch(self, params: EStepParams) -> None:
        """Begin a mini-batch with these model parameters."""

    def submit(self, chunk: CsrChunk, pass_: int) -> None:
        """Queue a chunk of the batch (chunks arrive in document order)."""

    def collect(self, plan_for: Callable[[int], Any]) -> tuple[BatchStats, Any]:
        """Wait for every submitted chunk; return the batch's statistics and the plan of its M-step,
        ``plan_for(number of documents)``. A cluster hands the plan to its workers, which apply the M-step
        themselves: its statistics then have ``raw=None`` and the model's arrays lag until :meth:`sync`."""

    def sync(self, version: int | None = None, strict: bool = True) -> int | None:
        """Bring the model's arrays to ``version`` (default: every M-step collected so far) and return the
        version they hold; with ``strict``, raise when that is not possible. None for a local E-step, whose
        model applied every M-step itself."""

    def close(self, answered: bool = True) -> None:
        """Release resources; ``answered`` is False when the update stopped on a failure that may have been the
        backend's own (then nothing more is asked of it: a hung cluster would only make the caller wait again)."""


class LocalEStep:
    """E-step in this process, parallel over all (or ``threads``) cores with numba."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = resolve_threads(threads)
        self._acc: BatchAccumulator | None = None
        self.stats = TrainingStats()

    def start_batch(self, params: EStepParams) -> None:
        self._acc = BatchAccumulator(params, sparse=params.refresh is not None)

    def submit(self, chunk: CsrChunk, pass_: int) -> None:
        if self._acc is None:
            raise RuntimeError("start_batch() must be called before submit()")
        p = self._acc.params
        with kernel_threads(self.threads):
            started = time.perf_counter()
            if p.refresh is not None:
                p.refresh(chunk.ids)
            gamma, _ = fit_documents(chunk, p.exp_elogbeta, p.alpha, p.seed, pass_, p.iterations, p.gamma_threshold)
            fitted = time.perf_counter()
            self._acc.add(chunk, gamma)
        self.stats.gamma_seconds += fitted - started
        self.stats.reduce_seconds += time.perf_counter() - fitted
        self.stats.documents += chunk.n_docs

    def collect(self, plan_for: Callable[[int], Any]) -> tuple[BatchStats, Any]:
        if self._acc is None:
            raise RuntimeError("start_batch() must be called before collect()")
        stats = self._acc.finish()
        self._acc = None
        return stats, plan_for(stats.numdocs)

    def use_corpus(self, corpus: Any) -> None:
        pass  # the documents are here already

    def sync(self, version: int | None = None, strict: bool = True) -> int | None:
        return None  # the model applied every M-step itself

    def close(self, answered: bool = True) -> None:
        self._acc = None
