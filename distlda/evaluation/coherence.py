"""Topic coherence: ``u_mass`` and ``c_npmi``, with gensim 4.4's definitions.

A coherence score is built in four steps (Röder, Both & Hinneburg, WSDM 2015):

segmentation
    which ordered word pairs ``(w', w*)`` of a topic's top words are compared:
    ``u_mass`` takes every word with each word ranked *before* it
    (``w' = t[i], w* = t[j], i > j``); ``c_npmi`` takes every ordered pair of
    distinct positions.
probability estimation
    ``u_mass`` counts documents (a word occurs in a document, two words co-occur
    in it); ``c_npmi`` counts *windows*: every run of ``window_size`` consecutive
    tokens of a text is one virtual document (a text shorter than the window,
    even an empty one, is one window). ``P(w)`` is the fraction of documents or
    windows holding ``w``.
confirmation measure, with ``ε = 1e-12``
    ``u_mass``: ``log((P(w', w*) + ε) / P(w*))``;
    ``c_npmi``: ``log((P(w', w*) + ε) / (P(w') P(w*))) / -log(P(w', w*) + ε)``.
aggregation
    the arithmetic mean over a topic's pairs; the model's coherence is the mean
    over topics (``scores.mean()``).

Counting is vectorised: only the words of the topics are looked at, each chunk of
documents (or batch of texts) becomes a sparse boolean matrix ``B`` of documents
(windows) by topic words, and ``BᵀB`` holds the document frequencies on its
diagonal and the co-document frequencies off it.

Words that never occur
----------------------
gensim gives a ``u_mass`` pair whose conditioning word ``w*`` occurs in no
document the value 0 (and a pair whose ``w'`` is missing a large negative value,
``log(ε / P(w*))``); this module does the same. For ``c_npmi`` gensim divides by
zero and returns ``inf`` for such a topic; here a pair with a word that occurs
in no window is worth 0 (no evidence either way) and a warning names the words.
A term id that the dictionary of ``c_npmi`` does not know is an error (gensim
silently drops it from the topic, which changes which pairs are scored).
"""

from __future__ import annotations

import itertools
import logging
import numbers
import time
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from distlda.corpora.csr import iter_chunks
from distlda.corpora.text import iter_batches
from distlda.validation import is_integer

__all__ = ["EPSILON", "c_npmi", "topic_coherence", "u_mass"]

logger = logging.getLogger(__name__)

EPSILON = 1e-12
"""Smoothing added to joint probabilities, as in gensim's confirmation measures."""

_DEFAULT_WINDOW = 10
_TEXT_BATCH = 8192
_COHERENCES = ("u_mass", "c_npmi")


# --------------------------------------------------------------------------- public API


def u_mass(topics: Sequence[Sequence[int]], corpus: Any, *, chunksize: int = 8192) -> np.ndarray:
    """UMass coherence of each topic, as gensim's ``CoherenceModel(coherence='u_mass')``.

    Parameters
    ----------
    topics : sequence of sequences of int
        Each topic's top term ids, most probable first (order matters: a word is
        conditioned on the words ranked before it). At least two ids per topic.
    corpus : corpus
        Reference documents: anything :func:`distlda.corpora.csr.iter_chunks`
        accepts (bag-of-words iterable, CsrChunk, scipy.sparse matrix, an object
        with ``iter_chunks``). A term counts as present in a document when it has
        a positive count there.
    chunksize : int, optional
        Documents counted per step.

    Returns
    -------
    numpy.ndarray of float64, shape (n_topics,)
        Mean over the pairs ``(t[i], t[j])``, ``i > j``, of
        ``log((D(t[i], t[j]) / D + ε) / (D(t[j]) / D))``; 0 is the maximum.

    Raises
    ------
    ValueError
        On an empty corpus, or topics that are empty, have fewer than two ids or
        a negative id.
    TypeError
        When a topic holds something other than integer ids.

    Examples
    --------
    >>> corpus = [[(0, 1), (1, 1)], [(0, 2)], [(1, 1), (2, 1)]]
    >>> u_mass([[0, 1]], corpus).round(4).tolist()   # log(1/3 / (2/3))
    [-0.6931]
    """
    rel_ids, topic_words = _prepare_topics(topics)
    started = time.perf_counter()
    num_docs, co = _document_counts(corpus, rel_ids, chunksize)
    logger.info(
        "u_mass: counted %d topic words in %d documents in %.2f s",
        len(rel_ids), num_docs, time.perf_counter() - started,
    )
    return _u_mass_scores(topic_words, num_docs, co)


def c_npmi(
    topics: Sequence[Sequence[int]],
    texts: Iterable[Sequence[str]],
    dictionary: Any,
    window_size: int = _DEFAULT_WINDOW,
    *,
    gensim_windows: bool = True,
) -> np.ndarray:
    """Normalised-PMI coherence of each topic, as gensim's ``CoherenceModel(coherence='c_npmi')``.

    Parameters
    ----------
    topics : sequence of sequences of int
        Each topic's top term ids (at least two per topic).
    texts : iterable of sequences of str
        Tokenised reference texts (lists of tokens, not strings).
    dictionary : Dictionary or mapping
        Maps the topics' term ids to tokens: an object with a ``token2id``
        mapping (gensim's or distlda's ``Dictionary``), a ``{token: id}`` dict,
        or an ``{id: token}`` dict such as ``SyntheticCorpus.id2word``.
    window_size : int, optional
        Tokens per sliding window (gensim's default for ``c_npmi`` is 10).
    gensim_windows : bool, optional
        gensim 4.4 slides its window by removing the token that leaves on the
        left and adding the one that enters on the right, so a word is marked
        absent once one of its occurrences leaves, even if it occurs again inside
        the window. True (the default) counts the same way, so scores equal
        gensim's; False counts a word in every window that contains it.

    Returns
    -------
    numpy.ndarray of float64, shape (n_topics,)
        Mean NPMI over the ordered pairs of distinct positions of each topic, in [-1, 1]
        (see the module notes for words that never occur).

    Raises
    ------
    ValueError
        On empty texts, a ``window_size`` below 1, bad topics, or a term id that
        ``dictionary`` does not know.
    TypeError
        When a text is a string rather than a list of tokens, or ``dictionary``
        is not a mapping.
    """
    window_size = _check_window(window_size)
    rel_ids, topic_words = _prepare_topics(topics)
    lookup = _token_lookup(dictionary, rel_ids)
    started = time.perf_counter()
    num_windows, co = _window_counts(texts, lookup, len(rel_ids), window_size, gensim_windows)
    logger.info(
        "c_npmi: counted %d topic words in %d windows of %d tokens in %.2f s",
        len(rel_ids), num_windows, window_size, time.perf_counter() - started,
    )
    return _npmi_scores(topic_words, num_windows, co, rel_ids)


def topic_coherence(
    topics_term_ids: Sequence[Sequence[int]],
    coherence: str = "u_mass",
    corpus: Any = None,
    texts: Iterable[Sequence[str]] | None = None,
    dictionary: Any = None,
    window_size: int | None = None,
) -> np.ndarray:
    """Coherence of each topic by the named measure.

    Parameters
    ----------
    topics_term_ids : sequence of sequences of int
        Each topic's top term ids, most probable first.
    coherence : {'u_mass', 'c_npmi'}, optional
        The measure.
    corpus : corpus, optional
        Reference bag-of-words documents for ``u_mass``.
    texts : iterable of sequences of str, optional
        Tokenised texts: required by ``c_npmi``; for ``u_mass`` used instead of
        ``corpus`` when no corpus is given (then with ``dictionary``), as gensim does.
    dictionary : Dictionary or mapping, optional
        Term ids to tokens, needed with ``texts``.
    window_size : int, optional
        Sliding window for ``c_npmi`` (default 10); not used by ``u_mass``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_topics,)
        Per-topic coherence; ``.mean()`` is the model's coherence.

    Raises
    ------
    ValueError
        When ``coherence`` is unknown or an input the measure needs is missing.
    """
    if coherence not in _COHERENCES:
        raise ValueError(f"coherence must be one of {', '.join(_COHERENCES)}, got {coherence!r}")
    if coherence == "u_mass":
        if window_size is not None:
            logger.debug("u_mass counts whole documents; window_size=%r is not used", window_size)
        if corpus is not None:
            return u_mass(topics_term_ids, corpus)
        if texts is None or dictionary is None:
            raise ValueError(
                "u_mass needs corpus (bag-of-words documents), or texts together with dictionary"
            )
        return _u_mass_from_texts(topics_term_ids, texts, dictionary)
    if texts is None:
        raise ValueError("c_npmi needs texts (tokenised documents: lists of str); corpus cannot be used")
    if dictionary is None:
        raise ValueError("c_npmi needs dictionary to map the topics' term ids to the tokens of texts")
    return c_npmi(
        topics_term_ids, texts, dictionary, _DEFAULT_WINDOW if window_size is None else window_size
    )


# --------------------------------------------------------------------------- topics and dictionaries


def _prepare_topics(topics: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted distinct term ids of all topics, and each topic as positions in that array."""
    if isinstance(topics, (str, bytes)) or not isinstance(topics, Iterable):
        raise TypeError(f"topics must be a sequence of sequences of term ids, got {type(topics).__name__}")
    arrays = []
    for k, topic in enumerate(topics):
        if isinstance(topic, (str, bytes)):
            raise TypeError(f"topic {k} is a string; topics must be sequences of integer term ids")
        if not isinstance(topic, Iterable):
            raise TypeError(f"topic {k} must be a sequence of term ids, got {type(topic).__name__}")
        arr = np.asarray(topic if isinstance(topic, np.ndarray) else list(topic))
        if arr.ndim != 1:
            raise ValueError(f"topic {k} must be a flat sequence of term ids, got shape {arr.shape}")
        if len(arr) and arr.dtype.kind not in "iu":
            raise TypeError(
                f"topic {k} must hold integer term ids, got {arr.dtype} values "
                "(map tokens to ids with dictionary.token2id first)"
            )
        if len(arr) < 2:
            raise ValueError(f"topic {k} has {len(arr)} term ids; coherence compares pairs, so it needs at least 2")
        if arr.min() < 0:
            raise ValueError(f"topic {k} has a negative term id {int(arr.min())}")
        arrays.append(arr.astype(np.int64))
    if not arrays:
        raise ValueError("topics is empty; give at least one topic")
    rel_ids = np.unique(np.concatenate(arrays))
    return rel_ids, [np.searchsorted(rel_ids, a) for a in arrays]


def _token_lookup(dictionary: Any, rel_ids: np.ndarray) -> dict[str, int]:
    """``{token: position in rel_ids}`` for the tokens of the topics' term ids."""
    token2id = getattr(dictionary, "token2id", None)
    if token2id is None:
        if not isinstance(dictionary, Mapping):
            raise TypeError(
                "dictionary must be a Dictionary (with token2id) or a mapping {token: id} or {id: token}, "
                f"got {type(dictionary).__name__}"
            )
        token2id = dictionary
    if len(token2id) == 0:
        raise ValueError("dictionary is empty")
    first_key = next(iter(token2id))
    if isinstance(first_key, (numbers.Integral, np.integer)):  # {id: token}
        tokens, raw_ids = list(token2id.values()), token2id.keys()
    else:
        tokens, raw_ids = list(token2id.keys()), token2id.values()
    try:
        ids = np.fromiter(raw_ids, dtype=np.int64, count=len(tokens))
    except (TypeError, ValueError):
        raise TypeError("dictionary must map tokens to integer term ids (or integer ids to tokens)") from None
    n_rel = len(rel_ids)
    pos = np.minimum(np.searchsorted(rel_ids, ids), n_rel - 1)
    hit = np.flatnonzero(rel_ids[pos] == ids)
    lookup = {tokens[i]: int(pos[i]) for i in hit}
    found = np.zeros(n_rel, dtype=bool)
    found[pos[hit]] = True
    if not found.all():
        missing = rel_ids[~found]
        shown = ", ".join(str(int(i)) for i in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(
            f"term ids {shown}{more} of the topics are not in dictionary; "
            "topics and dictionary must come from the same vocabulary"
        )
    return lookup


def _check_window(window_size: Any) -> int:
    if not is_integer(window_size):
        raise TypeError(f"window_size must be an integer, got {type(window_size).__name__}")
    if window_size < 1:
        raise ValueError(f"window_size must be at least 1, got {window_size}")
    return int(window_size)


# --------------------------------------------------------------------------- counting


def _cooccurrence(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_words: int) -> sp.csr_matrix:
    """``BᵀB`` for the boolean matrix ``B`` with ones at ``(rows, cols)`` (repeats allowed)."""
    b = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.int64), (rows, cols)), shape=(n_rows, n_words)
    )
    b.data[:] = 1  # repeats were summed; presence is what counts
    return (b.T @ b).tocsr()


def _document_counts(corpus: Any, rel_ids: np.ndarray, chunksize: int) -> tuple[int, sp.csr_matrix]:
    """Number of documents and the document co-occurrence matrix of the topic words."""
    n_rel = len(rel_ids)
    co = sp.csr_matrix((n_rel, n_rel), dtype=np.int64)
    num_docs = 0
    for chunk in iter_chunks(corpus, chunksize):
        ids = chunk.ids.astype(np.int64)
        pos = np.minimum(np.searchsorted(rel_ids, ids), n_rel - 1)
        hit = (rel_ids[pos] == ids) & (chunk.counts > 0)
        rows = np.repeat(np.arange(chunk.n_docs), np.diff(chunk.indptr))[hit]
        co = co + _cooccurrence(rows, pos[hit], chunk.n_docs, n_rel)
        num_docs += chunk.n_docs
    if num_docs == 0:
        raise ValueError("corpus is empty; coherence needs reference documents")
    return num_docs, co


def _text_batches(
    texts: Iterable[Sequence[str]], lookup: dict[str, int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(lengths, codes)`` per batch: token counts per text and, per token, its topic-word position or -1."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be an iterable of tokenised texts, got {type(texts).__name__}")
    number = 0
    for batch in iter_batches(texts, _TEXT_BATCH):
        for i, text in enumerate(batch):
            if isinstance(text, (str, bytes)):
                raise TypeError(
                    f"text {number + i} is a string; texts must be tokenised (lists of str), e.g. text.split()"
                )
            if not isinstance(text, (list, tuple)):
                batch[i] = list(text)
        number += len(batch)
        lengths = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        flat = itertools.chain.from_iterable(batch)
        codes = np.fromiter(
            map(lookup.get, flat, itertools.repeat(-1)), dtype=np.int64, count=int(lengths.sum())
        )
        yield lengths, codes


def _u_mass_from_texts(topics: Any, texts: Iterable[Sequence[str]], dictionary: Any) -> np.ndarray:
    """u_mass with the documents given as tokenised texts (a word is present when one of its tokens is)."""
    rel_ids, topic_words = _prepare_topics(topics)
    lookup = _token_lookup(dictionary, rel_ids)
    n_rel = len(rel_ids)
    co = sp.csr_matrix((n_rel, n_rel), dtype=np.int64)
    num_docs = 0
    for lengths, codes in _text_batches(texts, lookup):
        rows = np.repeat(np.arange(len(lengths)), lengths)
        hit = codes >= 0
        co = co + _cooccurrence(rows[hit], codes[hit], len(lengths), n_rel)
        num_docs += len(lengths)
    if num_docs == 0:
        raise ValueError("texts is empty; coherence needs reference documents")
    return _u_mass_scores(topic_words, num_docs, co)


def _window_counts(
    texts: Iterable[Sequence[str]], lookup: dict[str, int], n_rel: int, window: int, gensim_windows: bool
) -> tuple[int, sp.csr_matrix]:
    """Number of windows and the window co-occurrence matrix of the topic words.

    A token at position ``p`` of a text with ``n`` tokens lies in windows
    ``max(0, p - window + 1) .. min(p, n_windows - 1)`` where
    ``n_windows = max(1, n - window + 1)``. With ``gensim_windows`` the word is
    marked present from the first of these windows only until the window after
    the one whose left edge is the word's first occurrence at or past that
    window's start (what gensim's incremental update does).
    """
    co = sp.csr_matrix((n_rel, n_rel), dtype=np.int64)
    num_windows = 0
    for lengths, codes in _text_batches(texts, lookup):
        n_win = np.maximum(lengths - window + 1, 1)
        win_start = np.concatenate(([0], np.cumsum(n_win)[:-1]))
        tok_start = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        batch_windows = int(n_win.sum())
        num_windows += batch_windows
        where = np.flatnonzero(codes >= 0)
        if len(where) == 0:
            continue
        doc = np.repeat(np.arange(len(lengths)), lengths)[where]
        pos = where - tok_start[doc]
        word = codes[where]
        first = np.maximum(pos - window + 1, 0)
        if gensim_windows:
            last_excl = _first_occurrence_from(doc, word, pos, first, n_rel) + 1
        else:
            last_excl = pos + 1
        last_excl = np.minimum(last_excl, n_win[doc])
        span = last_excl - first
        # expand each token's windows [first, last_excl) into (window, word) entries
        offsets = np.repeat(win_start[doc] + first - (np.cumsum(span) - span), span)
        rows = offsets + np.arange(int(span.sum()))
        co = co + _cooccurrence(rows, np.repeat(word, span), batch_windows, n_rel)
    if num_windows == 0:
        raise ValueError("texts is empty; coherence needs reference texts")
    return num_windows, co


def _first_occurrence_from(
    doc: np.ndarray, word: np.ndarray, pos: np.ndarray, start: np.ndarray, n_rel: int
) -> np.ndarray:
    """For each token, the first position ``>= start`` of the same word in the same text."""
    group = doc * n_rel + word
    order = np.argsort(group, kind="stable")  # tokens come in position order within a text
    sorted_group = group[order]
    rank = np.concatenate(([0], np.cumsum(sorted_group[1:] != sorted_group[:-1])))
    scale = int(pos.max()) + 1
    keys = rank * scale + pos[order]
    rank_of = np.empty_like(rank)
    rank_of[order] = rank
    found = np.searchsorted(keys, rank_of * scale + start)  # the token itself is a candidate
    return pos[order][found]


# --------------------------------------------------------------------------- measures


def _one_preceding_pairs(topic_words: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(topic, w', w*)`` for every ``w' = t[i]``, ``w* = t[j]``, ``i > j``, in gensim's order."""
    parts = []
    for k, words in enumerate(topic_words):
        i, j = np.tril_indices(len(words), -1)
        parts.append((np.full(len(i), k), words[i], words[j]))
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def _one_one_pairs(topic_words: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(topic, w', w*)`` for every ordered pair of distinct positions, in gensim's order."""
    parts = []
    for k, words in enumerate(topic_words):
        n = len(words)
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        parts.append((np.full(len(i), k), words[i], words[j]))
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def _per_topic_mean(values: np.ndarray, topic: np.ndarray, n_topics: int) -> np.ndarray:
    return np.bincount(topic, weights=values, minlength=n_topics) / np.bincount(topic, minlength=n_topics)


def _u_mass_scores(topic_words: list[np.ndarray], num_docs: int, co: sp.csr_matrix) -> np.ndarray:
    topic, w_prime, w_star = _one_preceding_pairs(topic_words)
    joint = np.asarray(co[w_prime, w_star]).ravel().astype(np.float64)
    occ = co.diagonal().astype(np.float64)
    star = occ[w_star]
    n = float(num_docs)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(((joint / n) + EPSILON) / (star / n))
    values[star == 0] = 0.0  # gensim's value when the conditioning word is in no document
    return _per_topic_mean(values, topic, len(topic_words))


def _npmi_scores(
    topic_words: list[np.ndarray], num_windows: int, co: sp.csr_matrix, rel_ids: np.ndarray
) -> np.ndarray:
    topic, w_prime, w_star = _one_one_pairs(topic_words)
    joint = np.asarray(co[w_prime, w_star]).ravel().astype(np.float64)
    occ = co.diagonal().astype(np.float64)
    n = float(num_windows)
    p_joint = joint / n
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((p_joint + EPSILON) / ((occ[w_prime] / n) * (occ[w_star] / n)))
        values = pmi / -np.log(p_joint + EPSILON)
    unseen = (occ[w_prime] == 0) | (occ[w_star] == 0)
    if unseen.any():
        absent = rel_ids[occ == 0]
        logger.warning(
            "c_npmi: term ids %s of the topics occur in no window; their pairs count as 0",
            absent[:20].tolist(),
        )
        values[unseen] = 0.0
    return _per_topic_mean(values, topic, len(topic_words))
