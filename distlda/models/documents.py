"""Questions asked of documents: topic mixtures, per-word topics, the bound and perplexity.

:class:`DocumentQueriesMixin` holds the gensim-compatible methods of
:class:`~distlda.models.LdaModel` that run inference on documents with the
current topics. Documents queried get their random initialisation from their
own content, so asking twice gives the same answer (gensim's differs per call).
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
from typing import Any, Iterator

import numpy as np

from distlda.core.estep import BatchAccumulator, EStepParams, fit_gamma
from distlda.corpora.csr import CsrChunk, bow_to_chunk, concat_chunks, iter_chunks, validate_chunk
from distlda.kernels.bound import document_bounds, topic_bound
from distlda.kernels.mstep import topic_log_sums
from distlda.kernels.rng import content_keys

logger = logging.getLogger(__name__)

__all__ = ["DocumentQueriesMixin", "TransformedCorpus", "is_corpus"]


def _is_pair(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.shape[0] == 2
    if isinstance(x, (tuple, list)) and len(x) == 2:
        return all(isinstance(v, (numbers.Number, np.number)) for v in x)
    return False


def is_corpus(obj: Any) -> tuple[bool, Any]:
    """Whether ``obj`` is a corpus (many documents) rather than one bag-of-words document.

    Returns the answer and an object to use in place of ``obj`` (a one-shot
    iterator is re-chained after peeking at its first item).
    """
    if isinstance(obj, CsrChunk) or callable(getattr(obj, "iter_chunks", None)):
        return True, obj
    try:
        import scipy.sparse as sp
        if sp.issparse(obj):
            return True, obj
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, np.ndarray):
        return (obj.ndim == 3 or (obj.ndim == 2 and obj.shape[1] != 2)), obj
    if isinstance(obj, (list, tuple)):
        if len(obj) == 0:
            return False, obj
        return not _is_pair(obj[0]), obj
    if isinstance(obj, (str, bytes)):
        raise TypeError("expected a bag-of-words document or a corpus, got a string (tokenise and use doc2bow first)")
    try:
        iterator = iter(obj)
    except TypeError:
        raise TypeError(f"expected a bag-of-words document or a corpus, got {type(obj).__name__}") from None
    if iterator is obj:
        try:
            first = next(iterator)
        except StopIteration:
            return False, []
        return not _is_pair(first), itertools.chain([first], iterator)
    for first in obj:
        return not _is_pair(first), obj
    return False, []


class TransformedCorpus:
    """A corpus seen through a model: iterating yields each document's topics.

    Documents are inferred a chunk at a time (vectorised), not one by one.
    """

    def __init__(self, model: "DocumentQueriesMixin", corpus: Any, chunksize: int | None = None,
                 **kwargs: Any) -> None:
        self.model = model
        self.corpus = corpus
        self.chunksize = chunksize or getattr(model, "chunksize", 2000) or 2000
        self.kwargs = kwargs

    def __len__(self) -> int:
        return len(self.corpus)

    def __iter__(self) -> Iterator[Any]:
        for chunk in iter_chunks(self.corpus, self.chunksize):
            yield from self.model._topics_of_chunk(chunk, **self.kwargs)


class DocumentQueriesMixin:
    """Inference on documents; expects ``num_topics``, ``num_terms``, ``alpha``, ``iterations``,
    ``gamma_threshold``, ``minimum_probability``, ``minimum_phi_value``, ``per_word_topics``,
    ``state``, ``expElogbeta``, ``_seed`` and ``expElogbeta_wm`` on the class it is mixed into."""

    num_topics: int
    num_terms: int
    alpha: np.ndarray
    iterations: int
    gamma_threshold: float
    minimum_probability: float
    minimum_phi_value: float
    per_word_topics: bool
    dtype: np.dtype
    _seed: int

    expElogbeta_wm: np.ndarray

    def _as_chunk(self, docs: Any) -> CsrChunk:
        """Any accepted corpus or list of documents as one validated chunk within the vocabulary."""
        if isinstance(docs, CsrChunk):
            chunk = docs
        elif isinstance(docs, (list, tuple)):
            chunk = bow_to_chunk(list(docs))
        else:
            parts = list(iter_chunks(docs, 10_000))
            chunk = concat_chunks(parts) if parts else bow_to_chunk([])
        validate_chunk(chunk, self.num_terms)
        return chunk

    def inference(self, chunk: Any, collect_sstats: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Fit the variational topic mixture γ of each document, with the topics fixed.

        Parameters
        ----------
        chunk : list of bag-of-words, CsrChunk, or any corpus
        collect_sstats : bool
            Also return the documents' sufficient statistics (K × V).

        Returns
        -------
        gamma : numpy.ndarray, shape (n_docs, num_topics)
        sstats : numpy.ndarray, shape (num_topics, num_terms), or None
        """
        chunk = self._as_chunk(chunk)
        exp_elogbeta = self.expElogbeta_wm
        alpha = np.asarray(self.alpha, dtype=self.dtype)
        keys = content_keys(self._seed, chunk.indptr, chunk.ids, chunk.counts)
        gamma, _ = fit_gamma(chunk, exp_elogbeta, alpha, keys, self.iterations, self.gamma_threshold)
        if not collect_sstats:
            return gamma, None
        acc = BatchAccumulator(EStepParams(exp_elogbeta, alpha, self.iterations, self.gamma_threshold, self._seed))
        acc.add(CsrChunk(chunk.indptr, chunk.ids, chunk.counts, 0), gamma)
        return gamma, np.ascontiguousarray((acc.stats.raw * exp_elogbeta).T)

    def _chunk_bound(self, chunk: CsrChunk, gamma: np.ndarray | None) -> float:
        if gamma is None:
            gamma, _ = self.inference(chunk)
        chunk = chunk.for_kernels(self.dtype)
        sstats, eta = self.state.sstats_wm, self.state.eta_wm()
        out = np.empty(chunk.n_docs, dtype=np.float64)
        document_bounds(chunk.indptr, chunk.ids, chunk.counts, self.expElogbeta_wm, sstats, eta, topic_log_sums(sstats, eta),
                        np.asarray(gamma, dtype=self.dtype), np.asarray(self.alpha, dtype=np.float64), out)
        return float(out.sum())

    def bound(self, corpus: Any, gamma: np.ndarray | None = None, subsample_ratio: float = 1.0) -> float:
        """The variational lower bound of log p(corpus), as in Hoffman et al. (2010).

        Parameters
        ----------
        corpus : iterable of bag-of-words
        gamma : numpy.ndarray, optional
            Fitted γ of the corpus's documents (inferred when not given).
        subsample_ratio : float
            Multiply the document part by this (the corpus is a sample of a larger one).
        """
        score = 0.0
        done = 0
        for chunk in iter_chunks(corpus, 10_000):
            validate_chunk(chunk, self.num_terms)
            g = None if gamma is None else gamma[done:done + chunk.n_docs]
            score += self._chunk_bound(chunk, g)
            done += chunk.n_docs
        score *= subsample_ratio
        return score + topic_bound(self.state.sstats_wm, self.state.eta_wm())

    def per_word_bound(self, corpus: Any) -> float:
        """Bound of ``corpus`` divided by its number of words (nats per word; higher is better)."""
        words = 0.0
        score = 0.0
        for chunk in iter_chunks(corpus, 10_000):
            validate_chunk(chunk, self.num_terms)
            score += self._chunk_bound(chunk, None)
            words += chunk.num_words()
        if words == 0:
            raise ValueError("the corpus has no words: its per-word bound is undefined")
        return (score + topic_bound(self.state.sstats_wm, self.state.eta_wm())) / words

    def log_perplexity(self, chunk: Any, total_docs: int | None = None) -> float:
        """Per-word bound of ``chunk``, as if it were a sample of a corpus of ``total_docs`` documents.

        Logs the bound and the perplexity exp(−bound) (nats, so e-based; gensim
        logged 2**(−bound) of a bound in nats, which was not a perplexity).

        Returns
        -------
        float
            The per-word bound (higher is better).
        """
        chunk = self._as_chunk(chunk)
        if total_docs is None:
            total_docs = chunk.n_docs
        words = chunk.num_words()
        if chunk.n_docs == 0 or words == 0:
            raise ValueError("log_perplexity needs documents with words")
        ratio = total_docs / chunk.n_docs
        perword = self.bound(chunk, subsample_ratio=ratio) / (ratio * words)
        logger.info("%.3f per-word bound, %.1f perplexity estimate based on a held-out corpus of %i documents "
                    "with %i words", perword, math.exp(-perword) if perword > -700 else math.inf,
                    chunk.n_docs, words)
        return perword

    def _topics_of_chunk(self, chunk: CsrChunk, minimum_probability: float | None = None,
                         minimum_phi_value: float | None = None,
                         per_word_topics: bool = False) -> list[Any]:
        minimum_probability = max(self.minimum_probability if minimum_probability is None
                                  else float(minimum_probability), 1e-8)
        minimum_phi_value = max(self.minimum_phi_value if minimum_phi_value is None
                                else float(minimum_phi_value), 1e-8)
        validate_chunk(chunk, self.num_terms)
        gamma, _ = self.inference(chunk)
        theta = gamma / gamma.sum(axis=1, keepdims=True)
        results: list[Any] = []
        eth = None
        if per_word_topics:
            from distlda.kernels.special import dirichlet_expectation
            eth = np.exp(dirichlet_expectation(gamma.astype(np.float64)))
            eb = self.expElogbeta
        as_dtype = self.dtype.type  # as gensim's: probabilities are numpy floats of the model's dtype
        for d in range(chunk.n_docs):
            topics = [(k, as_dtype(p)) for k, p in enumerate(theta[d]) if p >= minimum_probability]
            if not per_word_topics:
                results.append(topics)
                continue
            lo, hi = int(chunk.indptr[d]), int(chunk.indptr[d + 1])
            word_topics, word_phis = [], []
            for v, c in zip(chunk.ids[lo:hi], chunk.counts[lo:hi]):
                col = eth[d] * eb[:, v]
                phi = c * col / col.sum()
                order = [int(k) for k in np.argsort(-phi, kind="stable") if phi[k] >= minimum_phi_value]
                word_topics.append((int(v), order))
                word_phis.append((int(v), [(k, as_dtype(phi[k])) for k in order]))
            results.append((topics, word_topics, word_phis))
        return results

    def get_document_topics(self, bow: Any, minimum_probability: float | None = None,
                            minimum_phi_value: float | None = None,
                            per_word_topics: bool = False) -> Any:
        """Topic mixture of a document (or, given a corpus, of each of its documents, lazily).

        Parameters
        ----------
        bow : list of (int, float), or a corpus
        minimum_probability : float, optional
            Leave out topics with a lower probability (default: the model's; at least 1e-8).
        minimum_phi_value : float, optional
            With ``per_word_topics``, leave out word-topic weights below this.
        per_word_topics : bool
            Also return, for each word, its likely topics and their expected counts φ.

        Returns
        -------
        list of (int, numpy.floating)
            ``(topic_id, probability)``, probabilities of the model's dtype as in gensim; with
            ``per_word_topics`` a triple
            ``(topics, word_topics, word_phis)``; for a corpus, a :class:`TransformedCorpus`.
        """
        corpus_like, obj = is_corpus(bow)
        kwargs = dict(minimum_probability=minimum_probability, minimum_phi_value=minimum_phi_value,
                      per_word_topics=per_word_topics)
        if corpus_like:
            return TransformedCorpus(self, obj, **kwargs)
        return self._topics_of_chunk(bow_to_chunk([obj]), **kwargs)[0]

    def __getitem__(self, bow: Any, eps: float | None = None) -> Any:
        """Topics of a document or of a corpus, with the model's defaults (see :meth:`get_document_topics`)."""
        return self.get_document_topics(bow, eps, self.minimum_phi_value, self.per_word_topics)
