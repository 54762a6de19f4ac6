"""Data for pyLDAvis, the interactive topic-model browser, without importing it.

pyLDAvis is optional: this module only computes the arrays its ``prepare()``
function takes, so that any version of pyLDAvis can draw a distlda model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from distlda.corpora.csr import iter_chunks, validate_chunk
from distlda.validation import is_integer

logger = logging.getLogger(__name__)

__all__ = ["pyldavis_data"]

CHUNKSIZE = 2000


def _check_model(model: Any) -> tuple[int, int]:
    for name in ("get_topics", "inference"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"model must be a trained distlda LdaModel (it has no {name}() method), "
                            f"got {type(model).__name__}")
    k, v = getattr(model, "num_topics", None), getattr(model, "num_terms", None)
    if not is_integer(k) or not is_integer(v) or k < 1 or v < 1:
        raise TypeError("model must have positive integer num_topics and num_terms")
    return int(k), int(v)


def _vocab(model: Any, dictionary: Any, num_terms: int) -> list[str]:
    """Word of every id ``0 .. num_terms - 1``, from ``dictionary`` or else the model's ``id2word``."""
    source = dictionary if dictionary is not None else getattr(model, "id2word", None)
    name = "dictionary" if dictionary is not None else "model.id2word"
    if source is None:
        raise ValueError("no vocabulary: pass a dictionary, or use a model that has id2word")
    if isinstance(source, (str, bytes)) or not hasattr(source, "__getitem__"):
        raise TypeError(f"{name} must be a Dictionary or a mapping of id to word, got {type(source).__name__}")
    if dictionary is not None:
        if hasattr(source, "keys"):
            size = max((int(i) for i in source), default=-1) + 1
        else:
            size = len(source)
        if size != num_terms:
            raise ValueError(f"the dictionary covers {size} term ids but the model has {num_terms} terms: "
                             "pass the dictionary the model was trained with")
    vocab = []
    missing = 0
    for i in range(num_terms):
        try:
            word = source[i]
        except (KeyError, IndexError):
            word, missing = str(i), missing + 1
        vocab.append(word.decode("utf-8", "replace") if isinstance(word, bytes) else str(word))
    if missing:
        logger.warning("%d of %d term ids have no word in %s: their id stands for the word", missing, num_terms,
                       name)
    return vocab


def _read_corpus(model: Any, corpus: Any, num_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Topic proportions and length of every document, and the frequency of every term, in one pass.

    Raises
    ------
    ValueError
        When the corpus has no documents, or a document has term ids the model lacks or bad counts.
    """
    chunksize = int(getattr(model, "chunksize", 0) or CHUNKSIZE)
    thetas, lengths = [], []
    frequency = np.zeros(num_terms, dtype=np.float64)
    for chunk in iter_chunks(corpus, chunksize):
        validate_chunk(chunk, num_terms)
        gamma, _ = model.inference(chunk)
        gamma = np.asarray(gamma, dtype=np.float64)
        thetas.append(gamma / gamma.sum(axis=1, keepdims=True))
        running = np.concatenate([[0.0], np.cumsum(chunk.counts, dtype=np.float64)])
        lengths.append(running[chunk.indptr[1:]] - running[chunk.indptr[:-1]])
        frequency += np.bincount(chunk.ids, weights=chunk.counts, minlength=num_terms)
    if not thetas or sum(len(t) for t in thetas) == 0:
        raise ValueError("the corpus is empty: pyLDAvis needs documents")
    return np.concatenate(thetas), np.concatenate(lengths), frequency


def pyldavis_data(model: Any, corpus: Any, dictionary: Any = None) -> dict[str, Any]:
    """The keyword arguments of ``pyLDAvis.prepare`` for a model and a corpus.

    Documents are inferred a chunk at a time with the model's vectorised
    inference (deterministic: a document gets the same topics every time), and
    the corpus is read once, so it may be a one-shot stream.

    Parameters
    ----------
    model : LdaModel
        A trained model.
    corpus : iterable of bag-of-words, or any corpus distlda reads
        Documents to show (usually the training corpus), with term ids below
        ``model.num_terms``.
    dictionary : Dictionary or mapping of int to str, optional
        Vocabulary (default: ``model.id2word``); must cover the model's term ids.

    Returns
    -------
    dict
        ``topic_term_dists`` : numpy.ndarray (K, V), rows sum to 1;
        ``doc_topic_dists`` : numpy.ndarray (D, K), rows sum to 1;
        ``doc_lengths`` : numpy.ndarray (D,), tokens per document;
        ``vocab`` : list of V str;
        ``term_frequency`` : numpy.ndarray (V,), count of each term in ``corpus``.

    Raises
    ------
    TypeError
        When ``model`` is not a trained model, or ``corpus``/``dictionary`` have the wrong type.
    ValueError
        When the corpus is empty or has no words, has term ids outside the
        model's vocabulary or bad counts, or the dictionary does not match the model.

    Notes
    -----
    Terms that never occur in ``corpus`` get a frequency of 0; pyLDAvis divides
    by the term frequency to compute its "lift", so show it the corpus the model
    was trained on (or filter such terms out).

    Examples
    --------
    >>> import pyLDAvis  # doctest: +SKIP
    >>> from distlda.report.pyldavis import pyldavis_data
    >>> vis = pyLDAvis.prepare(**pyldavis_data(model, corpus, dictionary))  # doctest: +SKIP
    >>> pyLDAvis.save_html(vis, "topics.html")  # doctest: +SKIP
    """
    k, v = _check_model(model)
    if corpus is None:
        raise TypeError("corpus must be an iterable of bag-of-words documents, got None")
    vocab = _vocab(model, dictionary, v)
    topics = np.asarray(model.get_topics(), dtype=np.float64)
    if topics.shape != (k, v) or not np.all(np.isfinite(topics)) or np.any(topics < 0):
        raise ValueError(f"the model's topics must be a finite non-negative ({k}, {v}) matrix")
    topics = topics / topics.sum(axis=1, keepdims=True)

    doc_topic, doc_lengths, frequency = _read_corpus(model, corpus, v)
    if doc_lengths.sum() <= 0:
        raise ValueError("the corpus has no words: pyLDAvis needs documents with words")
    unseen = int(np.count_nonzero(frequency == 0))
    if unseen:
        logger.warning("%d of %d terms never occur in the corpus (term frequency 0)", unseen, v)
    return {
        "topic_term_dists": topics,
        "doc_topic_dists": doc_topic,
        "doc_lengths": doc_lengths,
        "vocab": vocab,
        "term_frequency": frequency,
    }
