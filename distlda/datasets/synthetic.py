"""Synthetic corpora drawn from a known LDA model.

The generative process is the one LDA assumes:

1. each topic ``k`` is a distribution over the vocabulary, ``β_k ~ Dirichlet(η)``
   (or given by the caller);
2. each document ``d`` has topic proportions ``θ_d ~ Dirichlet(α)`` and a length
   ``N_d ~ Poisson(doc_length)``, raised to 1 when the draw is 0;
3. each word of ``d`` picks a topic ``z ~ Categorical(θ_d)`` and then a term
   ``w ~ Categorical(β_z)``.

Documents are produced in blocks: numpy draws every random number of a block
(proportions and two uniforms per word) from one :class:`numpy.random.Generator`
in a fixed order, and numba kernels (single-threaded: they compile in a few
seconds, once, and are cached) turn the uniforms into words and the words into
sorted bag-of-words rows, so the corpus depends on ``random_state`` only.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterator

import numba
import numpy as np

from distlda.corpora.csr import INDPTR_DTYPE, CsrChunk
from distlda.validation import is_integer

__all__ = ["SyntheticCorpus", "make_lda_corpus"]

logger = logging.getLogger(__name__)

# Documents generated per block; bounds the memory of the uniforms. The draws are made
# block by block, so changing this changes the corpus a given seed produces.
_BLOCK_DOCS = 32768


@dataclass
class SyntheticCorpus:
    """Documents drawn from a known LDA model, with the model that drew them.

    Behaves as a corpus: ``len(corpus)``, iteration over bag-of-words lists and
    :meth:`iter_chunks` (the fast path of :func:`distlda.corpora.csr.iter_chunks`).

    Parameters
    ----------
    topics : numpy.ndarray of float64, shape (num_topics, num_terms)
        True topic-word distributions (rows sum to 1).
    chunk : CsrChunk
        All documents; term ids sorted within each document, counts float64, ``start == 0``.
    alpha : numpy.ndarray of float64, shape (num_topics,)
        Dirichlet prior the document-topic proportions were drawn from.
    theta : numpy.ndarray of float32, shape (num_docs, num_topics), optional
        True topic proportions of each document (kept only when asked for).
    id2word : dict of int to str
        Synthetic token names, ``'t00042'`` for term 42. Filled in when not given.
    """

    topics: np.ndarray
    chunk: CsrChunk
    alpha: np.ndarray
    theta: np.ndarray | None = None
    id2word: dict[int, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.id2word:
            self.id2word = synthetic_id2word(self.num_terms)

    @property
    def num_topics(self) -> int:
        """Number of true topics."""
        return int(self.topics.shape[0])

    @property
    def num_terms(self) -> int:
        """Vocabulary size."""
        return int(self.topics.shape[1])

    @property
    def num_docs(self) -> int:
        """Number of documents."""
        return self.chunk.n_docs

    @property
    def num_nnz(self) -> int:
        """Number of stored (term, count) entries over all documents."""
        return self.chunk.nnz

    def __len__(self) -> int:
        return self.chunk.n_docs

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        return iter(self.chunk)

    def iter_chunks(self, chunksize: int, start: int = 0) -> Iterator[CsrChunk]:
        """Yield the documents as :class:`CsrChunk` slices of ``chunksize`` documents.

        Parameters
        ----------
        chunksize : int
            Documents per chunk (the last may be shorter).
        start : int, optional
            Number given to the first document; chunk ``i`` has ``start + i * chunksize``.

        Yields
        ------
        CsrChunk
            Views into this corpus's arrays (do not modify them).
        """
        if chunksize < 1:
            raise ValueError(f"chunksize must be at least 1, got {chunksize}")
        base = CsrChunk(self.chunk.indptr, self.chunk.ids, self.chunk.counts, int(start))
        for lo in range(0, self.num_docs, chunksize):
            yield base.slice(lo, lo + chunksize)

    def split(self, holdout_fraction: float) -> tuple["SyntheticCorpus", "SyntheticCorpus"]:
        """Split into a training part and a held-out part (the last documents).

        Parameters
        ----------
        holdout_fraction : float
            Fraction of documents to hold out, strictly between 0 and 1; the
            held-out count is ``round(holdout_fraction * num_docs)``.

        Returns
        -------
        (SyntheticCorpus, SyntheticCorpus)
            ``(train, heldout)``, sharing ``topics``, ``alpha`` and ``id2word``;
            each has its own chunk numbered from 0 and its rows of ``theta``.

        Raises
        ------
        ValueError
            When the fraction is not in (0, 1) or leaves one of the parts empty.
        """
        if not 0.0 < float(holdout_fraction) < 1.0:
            raise ValueError(f"holdout_fraction must be strictly between 0 and 1, got {holdout_fraction!r}")
        n_held = int(round(float(holdout_fraction) * self.num_docs))
        n_train = self.num_docs - n_held
        if n_held == 0 or n_train == 0:
            raise ValueError(
                f"holdout_fraction={holdout_fraction!r} of {self.num_docs} documents leaves "
                f"{n_train} for training and {n_held} held out; both must be at least 1"
            )
        parts = []
        for lo, hi in ((0, n_train), (n_train, self.num_docs)):
            piece = self.chunk.slice(lo, hi)
            theta = None if self.theta is None else self.theta[lo:hi]
            parts.append(
                SyntheticCorpus(
                    self.topics,
                    CsrChunk(piece.indptr, piece.ids, piece.counts, 0),
                    self.alpha,
                    theta,
                    self.id2word,
                )
            )
        return parts[0], parts[1]


def synthetic_id2word(num_terms: int) -> dict[int, str]:
    """Token names ``'t00000'``, ``'t00001'``, ... (at least five digits) for ``num_terms`` ids."""
    width = max(5, len(str(max(num_terms - 1, 0))))
    return {i: f"t{i:0{width}d}" for i in range(num_terms)}


def make_lda_corpus(
    num_docs: int,
    num_terms: int,
    num_topics: int,
    doc_length: float = 50,
    alpha: float | np.ndarray = 0.1,
    eta: float | np.ndarray = 0.01,
    random_state: int | np.random.Generator | None = None,
    topics: np.ndarray | None = None,
    return_theta: bool = False,
) -> SyntheticCorpus:
    """Draw a corpus from an LDA model with known topics.

    Parameters
    ----------
    num_docs : int
        Number of documents (at least 1).
    num_terms : int
        Vocabulary size ``V`` (at least 1).
    num_topics : int
        Number of topics ``K`` (at least 1).
    doc_length : float, optional
        Mean document length; lengths are ``max(1, Poisson(doc_length))``.
    alpha : float or array-like of shape (num_topics,), optional
        Dirichlet prior of the document-topic proportions (positive).
    eta : float or array-like of shape (num_terms,), optional
        Dirichlet prior of the topics (positive); unused when ``topics`` is given.
    random_state : int, numpy.random.Generator or None, optional
        Seed or generator. The same seed gives the same corpus.
    topics : array-like of shape (num_topics, num_terms), optional
        True topics to use instead of drawing them; non-negative rows summing to 1
        (to within 1e-6; they are renormalised exactly).
    return_theta : bool, optional
        Keep the true proportions as ``theta`` (float32, ``num_docs * num_topics * 4``
        bytes: 400 MB for a million documents and 100 topics). The words are drawn
        from the float64 proportions; ``theta`` is their rounding to float32.

    Returns
    -------
    SyntheticCorpus

    Raises
    ------
    ValueError
        On a non-positive size, length or prior, or ``topics`` of the wrong shape
        or not made of distributions.
    TypeError
        When a size is not an integer or ``random_state`` is of another type.

    Examples
    --------
    >>> corpus = make_lda_corpus(1000, 500, 10, random_state=0)
    >>> len(corpus), corpus.topics.shape
    (1000, (10, 500))
    """
    num_docs = _positive_int(num_docs, "num_docs")
    num_terms = _positive_int(num_terms, "num_terms")
    num_topics = _positive_int(num_topics, "num_topics")
    doc_length = float(doc_length)
    if not np.isfinite(doc_length) or doc_length <= 0:
        raise ValueError(f"doc_length must be a positive number, got {doc_length!r}")
    alpha_vec = _prior(alpha, num_topics, "alpha", "num_topics")
    rng = _as_generator(random_state)
    # the order of the draws (topics, lengths, then block by block) fixes the corpus of a seed
    if topics is None:
        beta = rng.dirichlet(_prior(eta, num_terms, "eta", "num_terms"), size=num_topics)
    else:
        beta = _check_topics(topics, num_topics, num_terms)
    lengths = np.maximum(rng.poisson(doc_length, size=num_docs), 1).astype(INDPTR_DTYPE)
    theta_all = np.empty((num_docs, num_topics), dtype=np.float32) if return_theta else None
    chunk = _draw_documents(rng, alpha_vec, np.cumsum(beta, axis=1), lengths, theta_all)
    logger.info(
        "drew a synthetic LDA corpus: %d documents, %d tokens, %d non-zeros, %d topics, %d terms",
        num_docs, int(lengths.sum()), chunk.nnz, num_topics, num_terms,
    )
    return SyntheticCorpus(beta, chunk, alpha_vec, theta_all)


def _draw_documents(rng: np.random.Generator, alpha: np.ndarray, beta_cum: np.ndarray, lengths: np.ndarray,
                    theta_out: np.ndarray | None) -> CsrChunk:
    """Draw the documents block by block: proportions, then two uniforms per word, then words.

    ``lengths`` gives each document's number of words; the proportions are
    copied into ``theta_out`` when it is given. Returns all documents as one chunk.
    """
    num_docs = len(lengths)
    nnz_parts, id_parts, count_parts = [], [], []
    for lo in range(0, num_docs, _BLOCK_DOCS):
        hi = min(lo + _BLOCK_DOCS, num_docs)
        theta = rng.dirichlet(alpha, size=hi - lo)
        if theta_out is not None:
            theta_out[lo:hi] = theta
        tok_indptr = np.zeros(hi - lo + 1, dtype=INDPTR_DTYPE)
        np.cumsum(lengths[lo:hi], out=tok_indptr[1:])
        uniforms = rng.random((2, int(tok_indptr[-1])))
        words = _draw_words(theta, beta_cum, tok_indptr, uniforms[0], uniforms[1])
        del uniforms
        doc_nnz = _sort_and_count_distinct(words, tok_indptr)
        ids, counts = _collapse(words, tok_indptr, doc_nnz)
        nnz_parts.append(doc_nnz)
        id_parts.append(ids)
        count_parts.append(counts)
        logger.debug("generated documents %d-%d of %d", lo, hi, num_docs)
    indptr = np.zeros(num_docs + 1, dtype=INDPTR_DTYPE)
    np.cumsum(np.concatenate(nnz_parts), out=indptr[1:])
    return CsrChunk(indptr, np.concatenate(id_parts), np.concatenate(count_parts), 0)


# --------------------------------------------------------------------------- validation


def _positive_int(value: Any, name: str) -> int:
    if not is_integer(value):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _prior(value: Any, size: int, name: str, size_name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(size, float(arr))
    elif arr.shape != (size,):
        raise ValueError(f"{name} must be a number or an array of length {size_name}={size}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} must be positive and finite")
    return arr


def _as_generator(random_state: Any) -> np.random.Generator:
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise TypeError(
        f"random_state must be an int, a numpy.random.Generator or None, got {type(random_state).__name__}"
    )


def _check_topics(topics: Any, num_topics: int, num_terms: int) -> np.ndarray:
    beta = np.array(topics, dtype=np.float64)
    if beta.shape != (num_topics, num_terms):
        raise ValueError(
            f"topics must have shape (num_topics, num_terms) = ({num_topics}, {num_terms}), got {beta.shape}"
        )
    if not np.all(np.isfinite(beta)) or np.any(beta < 0):
        raise ValueError("topics must be finite and non-negative")
    sums = beta.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise ValueError(f"each row of topics must sum to 1; row {int(bad[0])} sums to {sums[bad[0]]!r}")
    return beta / sums[:, None]


# --------------------------------------------------------------------------- kernels


@numba.njit(cache=True, inline="always")
def _search(cum: np.ndarray, x: float) -> int:
    """First index ``j`` with ``cum[j] > x`` (``cum`` non-decreasing), capped at ``len(cum) - 1``."""
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True)
def _draw_words(theta, beta_cum, tok_indptr, u_topic, u_word):  # pragma: no cover - numba
    """Word of every token: topic by inverse CDF of the document's ``theta``, term by that of ``β_z``."""
    n_docs, k = theta.shape
    words = np.empty(tok_indptr[-1], dtype=np.int32)
    for d in range(n_docs):
        cum = np.empty(k, dtype=np.float64)
        acc = 0.0
        for j in range(k):
            acc += theta[d, j]
            cum[j] = acc
        for t in range(tok_indptr[d], tok_indptr[d + 1]):
            z = _search(cum, u_topic[t] * acc)
            row = beta_cum[z]
            words[t] = _search(row, u_word[t] * row[-1])
    return words


@numba.njit(cache=True)
def _sort_and_count_distinct(words, tok_indptr):  # pragma: no cover - numba
    """Sort each document's words in place; return the number of distinct terms per document."""
    n_docs = len(tok_indptr) - 1
    nnz = np.zeros(n_docs, dtype=np.int64)
    for d in range(n_docs):
        lo, hi = tok_indptr[d], tok_indptr[d + 1]
        words[lo:hi].sort()
        distinct = 0
        for t in range(lo, hi):
            if t == lo or words[t] != words[t - 1]:
                distinct += 1
        nnz[d] = distinct
    return nnz


@numba.njit(cache=True)
def _collapse(words, tok_indptr, doc_nnz):  # pragma: no cover - numba
    """Sorted words of each document to (term id, count) rows."""
    n_docs = len(tok_indptr) - 1
    out_ptr = np.zeros(n_docs + 1, dtype=np.int64)
    for d in range(n_docs):
        out_ptr[d + 1] = out_ptr[d] + doc_nnz[d]
    ids = np.empty(out_ptr[-1], dtype=np.int32)
    counts = np.zeros(out_ptr[-1], dtype=np.float64)
    for d in range(n_docs):
        pos = out_ptr[d] - 1
        lo, hi = tok_indptr[d], tok_indptr[d + 1]
        for t in range(lo, hi):
            if t == lo or words[t] != words[t - 1]:
                pos += 1
                ids[pos] = words[t]
            counts[pos] += 1.0
    return ids, counts

