"""Initial topics from the data: anchor words (Arora et al., ICML 2013), the starting point of training.

Online variational Bayes started from random topics (gensim's Gamma(100, 1/100) noise) settles in a
local optimum where many learned topics are blends of several true ones, and more passes do not get it
out. Started instead from topics that already point the right way, the same training reaches topics as
close to the truth as a collapsed Gibbs sampler's, in a few passes.

The starting topics come from word co-occurrence, which mixing within documents does not blur:

1. the ``m`` most frequent words (``m = max(2000, 2K)``, at most V) and their co-occurrence matrix
   ``Q[i, j] = Σ_d (x_di x_dj − [i = j] x_di) / (n_d (n_d − 1))`` over every document, or over a sample of
   :data:`SAMPLE_DOCUMENTS` spread over a longer corpus (two streaming passes; memory ``m × m`` floats
   whatever its length; each document's pairs added straight into the dense matrix by the kernels of
   :mod:`distlda.kernels.cooccur`, the same numbers on any number of threads);
2. its rows normalised to ``p(w₂ | w₁)``; K *anchor words*, words nearly exclusive to one topic, are the
   rows found by greedy farthest-point search with Gram–Schmidt orthogonalisation (at large K, the same
   search on the rows' Gram matrix: a pivoted Cholesky factorisation);
3. every word's row written as a convex combination of the anchor rows (exponentiated gradient on the
   squared error, all words at once, in float32), which gives ``p(topic | word)``; Bayes' rule with ``p(word)`` gives
   the topics over the ``m`` words.

:func:`anchor_topics` returns those topics; :func:`add_anchor_topics` adds them, scaled to the corpus's
words per topic, to a model's initial statistics. Every step is deterministic (no random draws).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from distlda.corpora.csr import iter_chunks, validate_chunk
from distlda.kernels.cooccur import add_cooccurrence, symmetrize
from distlda.kernels.simplex import eg_accept, eg_trial, half_errors

logger = logging.getLogger(__name__)

__all__ = ["INIT_METHODS", "check_init", "anchor_topics", "add_anchor_topics", "Cooccurrence",
           "word_cooccurrence", "find_anchors", "recover_topics", "GRAM_ANCHORS_FROM"]

INIT_METHODS = ("anchors", "gensim")
"""Values of LdaModel's ``init``: 'anchors' (topics from the data, the default) or 'gensim' (random
topics exactly as gensim draws them, for parity with gensim)."""

MIN_WORDS = 2000
"""Fewest words the co-occurrence matrix covers (when the vocabulary has them); 2K for K over 1000."""

RECOVERY_ITERATIONS = 100
"""Exponentiated-gradient steps of :func:`recover_topics`."""

_READ_CHUNK = 4096  # documents per chunk read for the co-occurrence (bounds the temporary sparse products)

SAMPLE_DOCUMENTS = 250_000
"""Most documents the co-occurrence is counted over: a longer corpus contributes every s-th chunk of 4,096
documents (spread over all of it, the same chunks in both passes), so the start costs about two passes over at
most this many documents whatever the corpus's length."""


def _known_length(corpus: Any) -> int:
    """Documents in ``corpus`` when it says (0 for a stream that does not)."""
    if hasattr(corpus, "tocsr") and hasattr(corpus, "shape"):  # scipy sparse: one row per document
        return int(corpus.shape[0])
    return len(corpus) if hasattr(corpus, "__len__") else 0


def _sample_chunks(corpus: Any) -> Any:
    """The chunks of ``corpus`` the co-occurrence is counted over (every one, or every s-th of a long corpus)."""
    n = _known_length(corpus)
    stride = max(1, -(-n // SAMPLE_DOCUMENTS))
    for number, chunk in enumerate(iter_chunks(corpus, _READ_CHUNK)):
        if number % stride == 0:
            yield chunk


def check_init(name: str, value: Any) -> str:
    """The validated ``init`` parameter (one of :data:`INIT_METHODS`)."""
    if not isinstance(value, str) or value not in INIT_METHODS:
        raise ValueError(f"{name} must be one of {', '.join(repr(m) for m in INIT_METHODS)}, got {value!r}")
    return value


@dataclass
class Cooccurrence:
    """Word co-occurrence over the most frequent words of a corpus.

    Attributes
    ----------
    words : numpy.ndarray of int64, shape (m,)
        Term ids of the covered words, most frequent first.
    q : numpy.ndarray of float64, shape (m, m)
        Joint co-occurrence probabilities (sums to 1; all zeros when no document has two covered words).
    tokens : float
        Total count of all words (covered or not) in the corpus (estimated from the sample's for a corpus
        longer than :data:`SAMPLE_DOCUMENTS`).
    """

    words: np.ndarray
    q: np.ndarray
    tokens: float


def word_cooccurrence(corpus: Any, num_terms: int, max_words: int) -> Cooccurrence:
    """The co-occurrence matrix of the ``max_words`` most frequent words (two streaming passes).

    Raises
    ------
    ValueError
        For a document with a term id outside ``[0, num_terms)`` or a bad count (as training does).
    """
    freq = np.zeros(num_terms, dtype=np.float64)
    sampled = 0
    for chunk in _sample_chunks(corpus):
        validate_chunk(chunk, num_terms)
        freq += np.bincount(chunk.ids, weights=chunk.counts, minlength=num_terms)
        sampled += chunk.n_docs
    total_docs = _known_length(corpus) or sampled
    seen = np.flatnonzero(freq > 0)
    words = seen[np.argsort(-freq[seen], kind="stable")][:max_words].astype(np.int64)
    column = np.full(num_terms, -1, dtype=np.int64)
    column[words] = np.arange(len(words))
    q = np.zeros((len(words), len(words)), dtype=np.float64)
    row_work = freq[words]  # a word's pairs grow with its frequency: rows of equal total frequency per thread
    for chunk in _sample_chunks(corpus):  # column -1: an uncovered word, in neither the products nor the lengths
        add_cooccurrence(np.asarray(chunk.indptr, dtype=np.int64), column[chunk.ids],
                         np.asarray(chunk.counts, dtype=np.float64), q, row_work=row_work)
    symmetrize(q)
    np.maximum(q, 0.0, out=q)  # fractional counts (x < 1) can make the diagonal negative
    total = q.sum()
    if total > 0:
        q /= total
    # the corpus's word count, estimated from the sample's when only part of a long corpus was read
    return Cooccurrence(words, q, float(freq.sum()) * (total_docs / sampled if 0 < sampled < total_docs else 1.0))


GRAM_ANCHORS_FROM = 1 / 12
"""Smallest K / m from which :func:`find_anchors` first computes the m × m Gram matrix of the rows (see there)."""


def find_anchors(rows: np.ndarray, k: int) -> np.ndarray | None:
    """K rows that span the others best: greedy farthest point from the span of those chosen so far.

    Parameters
    ----------
    rows : numpy.ndarray, shape (m, m)
        Conditional co-occurrence ``p(w₂ | w₁)``, one row per word (zero rows are never chosen).
    k : int
        Number of anchors.

    Returns
    -------
    numpy.ndarray of int64, shape (k,) or None
        Row indices of the anchors; None when fewer than ``k`` rows are linearly independent.

    Notes
    -----
    Each step needs every row's coordinate along the new direction (the chosen row less its projection on the
    span so far, normalised), to take its square off the row's squared distance. For a small K, that is one
    product of the m × m rows with the direction per step, each a pass over the whole matrix (memory-bound: 0.9 s
    at K = 1000, m = 2000). From ``K >= m ·`` :data:`GRAM_ANCHORS_FROM` the Gram matrix ``G = rows rowsᵀ`` is
    computed once instead (one fast matrix product), and the coordinates along direction j come from its
    column of the chosen row less the coordinates found so far: ``(G[best] − Pᵀ P[:, best]) / ‖direction‖``, an
    m × j product (a pivoted Cholesky factorisation of G; 0.17 s at K = 1000; the same anchors as the first way on
    the Debian and synthetic corpora at K = 50 … 1000; the two ways can part only once the distances left are at
    the rounding noise, past the rows' rank). It costs a second m × m array, the Gram matrix; its K × m coordinates
    take the place of the first way's K × m directions. At K = 5000 (m = 10,000) the start then holds 2 GB: the
    rows, G and the coordinates, about one K × V float32 model array of a 100,000-word vocabulary.
    """
    m = rows.shape[0]
    norms = np.einsum("ij,ij->i", rows, rows)
    gram = rows @ rows.T if k >= GRAM_ANCHORS_FROM * m else None
    # the squared distance of every row from the span of the anchors so far, less the square of its coordinate along
    # each new direction: by Gram-Schmidt on the anchor rows (``basis``) or from the Gram matrix (``coords``)
    basis = np.empty((k, rows.shape[1]), dtype=rows.dtype) if gram is None else None
    coords = np.empty((k, m), dtype=rows.dtype) if gram is not None else None
    anchors = np.empty(k, dtype=np.int64)
    scale = norms.max(initial=0.0)
    for j in range(k):
        best = int(np.argmax(norms))
        if scale == 0.0 or norms[best] <= 1e-12 * scale:
            return None
        anchors[j] = best
        if coords is not None:
            coords[j] = (gram[best] - coords[:j].T @ coords[:j, best]) / np.sqrt(norms[best])
            norms -= coords[j] ** 2
        else:
            direction = rows[best] - basis[:j].T @ (basis[:j] @ rows[best])
            basis[j] = direction / np.linalg.norm(direction)
            norms -= (rows @ basis[j]) ** 2
        norms[anchors[: j + 1]] = 0.0  # rounding leaves them tiny, never chosen again
    return anchors


def recover_topics(rows: np.ndarray, word_prob: np.ndarray, anchors: np.ndarray,
                   iterations: int = RECOVERY_ITERATIONS) -> np.ndarray:
    """Topics over the covered words from the anchor rows (K × m, rows sum to 1; all-zero rows stay zero).

    Each word's row ``r_w`` is fitted by ``c_w @ rows[anchors]`` with ``c_w`` on the simplex (least squares
    by exponentiated gradient, whose multiplicative steps keep ``c_w`` on the simplex with no projection);
    ``c_w`` is ``p(topic | w)`` and ``p(w | topic) ∝ c_w p(w)``.
    """
    basis = rows[anchors]
    gram = basis @ basis.T  # K × K: the least-squares problem of every word shares it
    # the steps in float32: twice the speed of float64 for the m × K × K product of each step, which is nearly all
    # the time at large K (K = 1000 on the Debian corpus: 5.7 s in float64), with topics within 1e-6 (mean
    # Hellinger distance) of float64's; the curvature, which sets the first step, in float64
    first_step = min(50.0 / max(float(np.linalg.eigvalsh(gram)[-1]), 1e-300), 1e30)
    gram = gram.astype(np.float32)
    target = (rows @ basis.T).astype(np.float32)  # m × K
    k = len(anchors)
    weights = np.full((rows.shape[0], k), 1.0 / k, dtype=np.float32)
    product = weights @ gram
    error = half_errors(weights, product, target)
    # a large first step (in units of the curvature) converges in ~100 steps on real co-occurrences; a word
    # whose error a step would raise keeps its weights and halves its own step, so no word oscillates
    steps = np.full(rows.shape[0], first_step, dtype=np.float32)
    trial, trial_product = np.empty_like(weights), np.empty_like(weights)
    eg_trial(weights, product, target, steps, trial)
    for step in range(iterations):  # the product with G by BLAS, the rest in one pass over the rows
        np.matmul(trial, gram, out=trial_product)
        eg_accept(weights, product, error, steps, trial, trial_product, target, then_trial=step + 1 < iterations)
    topics = (weights * word_prob[:, None].astype(np.float64)).T  # in float64, as the model's start
    sums = topics.sum(axis=1, keepdims=True)
    return np.divide(topics, sums, out=np.zeros_like(topics), where=sums > 0)


def anchor_topics(corpus: Any, num_topics: int, num_terms: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Topics of ``corpus`` by anchor words, over its most frequent words: (the words, K × words float64 with
    rows summing to 1, the sample's total word count). Every other word has probability 0 in them.

    None when the corpus has fewer than K frequent words that co-occur independently (a tiny corpus or
    vocabulary): the caller then keeps random topics.
    """
    co = word_cooccurrence(corpus, num_terms, max(MIN_WORDS, 2 * num_topics))
    word_prob = co.q.sum(axis=1)
    # p(w₂ | w₁) in place of the joint probabilities, which nothing needs again (an m × m array less at the peak,
    # 800 MB at K = 5000); a word of probability 0 has a row of zeros either way
    rows = np.divide(co.q, word_prob[:, None], out=co.q, where=word_prob[:, None] > 0)
    anchors = find_anchors(rows, num_topics) if len(co.words) >= num_topics else None
    if anchors is None:
        # (info, not a warning: the random start is what every model of a toy corpus gets, by default)
        logger.info("init='anchors': the corpus has too few co-occurring words for %d anchor words; "
                    "starting from random topics", num_topics)
        return None
    logger.info("initial topics from %d anchor words over the %d most frequent words", num_topics, len(co.words))
    return co.words, recover_topics(rows, word_prob, anchors), co.tokens


def add_anchor_topics(sstats: np.ndarray, corpus: Any) -> bool:
    """Add the anchor-word topics of ``corpus`` to initial statistics (K × V, in place).

    Each topic gets the corpus's mean number of words per topic, so the first E-step sees topics as sharp
    as real ones. Returns False (``sstats`` unchanged) when the corpus cannot give K anchors.
    """
    found = anchor_topics(corpus, sstats.shape[0], sstats.shape[1])
    if found is None:
        return False
    words, topics, tokens = found
    # only the covered columns: no K × V temporary (a large model's statistics are GBs)
    sstats[:, words] += (topics * (tokens / sstats.shape[0])).astype(sstats.dtype)
    return True
