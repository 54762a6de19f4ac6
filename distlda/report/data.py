"""What a report shows, gathered from a model: top words, sizes, coherence, history, facts, the map.

:func:`collect` reads the model once and returns a :class:`ReportData` of plain
Python and numpy values; the page is rendered from that alone, so rendering
never touches the model. Everything read from ``model.info`` (free-form notes
saved with a model) is checked here: a malformed entry is left out, with a
warning in the log, rather than failing the report.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distlda.evaluation.distances import js_distances
from distlda.evaluation.topwords import top_ids
from distlda.report.layout import classical_mds
from distlda.report.svg import fmt_num

logger = logging.getLogger(__name__)

__all__ = ["HistoryPoint", "ReportData", "collect", "format_value"]

MAX_TEXT = 200


@dataclass
class HistoryPoint:
    """One evaluation during training: documents seen so far, held-out per-word bound, perplexity.

    ``pass_end`` is True when the evaluation came right after the last mini-batch of a
    pass (known from the corpus size, or else from the ``pass`` numbers of the history).
    """

    documents: float
    bound: float
    perplexity: float
    pass_end: bool = False


@dataclass
class ReportData:
    """Everything the page shows, independent of the model object.

    Attributes
    ----------
    num_topics, num_terms : int
        K and the vocabulary size V.
    model_facts, corpus_facts, training_facts : list of (str, str)
        Label and formatted value of each fact (not yet HTML-escaped).
    words : list of list of str
        Top words of each topic, most probable first.
    probs : list of list of float
        Their probabilities.
    sizes : numpy.ndarray, shape (K,)
        Share of the corpus's tokens assigned to each topic (sums to 1).
    coherence : numpy.ndarray of shape (K,), or None
        u_mass coherence of each topic (NaN where unknown), None when not available.
    history : list of HistoryPoint
        Held-out evaluations during training, by documents seen.
    coords : numpy.ndarray, shape (K, 2)
        Position of each topic on the map.
    train_documents : int or None
        Documents in one pass over the training corpus (from ``info["corpus"]``), when known.
    chunksize : int or None
        Documents per mini-batch during training (from ``info["training"]``), when known.
    """

    num_topics: int
    num_terms: int
    model_facts: list[tuple[str, str]]
    corpus_facts: list[tuple[str, str]]
    training_facts: list[tuple[str, str]]
    words: list[list[str]]
    probs: list[list[float]]
    sizes: np.ndarray
    coherence: np.ndarray | None
    history: list[HistoryPoint] = field(default_factory=list)
    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    train_documents: int | None = None
    chunksize: int | None = None


def format_value(value: Any) -> str:
    """A fact's value as short readable text (numbers grouped and rounded, containers flattened)."""
    if value is None:
        return "\u2013"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isfinite(v) and v.is_integer() and abs(v) >= 1000:
            return f"{v:,.0f}"
        return fmt_num(v, 4)
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        shown = ", ".join(format_value(v) for v in value[:10])
        text = shown + (f", \u2026 ({len(value)} items)" if len(value) > 10 else "")
    else:
        text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def _facts(section: Any, name: str) -> list[tuple[str, str]]:
    if section is None:
        return []
    if not isinstance(section, Mapping):
        logger.warning("model.info[%r] is a %s, not a dict: left out of the report", name, type(section).__name__)
        return []
    return [(str(k).replace("_", " "), format_value(v)) for k, v in section.items()]


def _word(id2word: Any, term_id: int) -> str:
    try:
        word = id2word[term_id]
    except (KeyError, IndexError, TypeError):
        return str(term_id)
    return word.decode("utf-8", "replace") if isinstance(word, bytes) else str(word)


def _top_words(topics: np.ndarray, id2word: Any, topn: int) -> tuple[list[list[str]], list[list[float]]]:
    """Top ``topn`` words of every topic, most probable first (ties by lower id)."""
    words, probs = [], []
    for t, ids in enumerate(top_ids(topics, topn)):
        words.append([_word(id2word, int(i)) for i in ids])
        probs.append([float(topics[t, i]) for i in ids])
    return words, probs


def _sizes(model: Any, k: int) -> np.ndarray:
    """Row sums of the sufficient statistics, normalised; uniform when they carry no information."""
    sstats = np.asarray(model.state.sstats, dtype=np.float64)
    rows = sstats.sum(axis=1) if sstats.ndim == 2 and sstats.shape[0] == k else np.zeros(k)
    total = float(rows.sum())
    if not math.isfinite(total) or total <= 0 or np.any(rows < 0):
        logger.warning("the model's statistics give no topic sizes: showing equal sizes")
        return np.full(k, 1.0 / k)
    return rows / total


def _coherence(value: Any, k: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        logger.warning("model.info['coherence'] is not a list of numbers: left out of the report")
        return None
    if arr.shape != (k,):
        logger.warning("model.info['coherence'] has %s values for %d topics: left out of the report",
                       arr.shape[0] if arr.ndim == 1 else arr.shape, k)
        return None
    return np.where(np.isfinite(arr), arr, np.nan)


def _positive_int(section: Any, key: str) -> int | None:
    """``section[key]`` when ``section`` is a dict and that entry is a positive integer, else None."""
    value = section.get(key) if isinstance(section, Mapping) else None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0:
        return int(value)
    return None


def _history(value: Any, per_pass: int | None = None) -> list[HistoryPoint]:
    """The valid evaluations of ``info["history"]``, by documents seen, with the ends of passes marked.

    With ``per_pass`` (documents in one pass) an evaluation ends a pass when its count of documents
    is a whole number of passes, as ``distlda train`` counts them; without it, the last evaluation
    carrying each ``pass`` number ends that pass, except the last pass, which may have been cut short.
    """
    if not value:
        return []
    if not isinstance(value, (list, tuple)):
        logger.warning("model.info['history'] is a %s, not a list: left out of the report", type(value).__name__)
        return []
    points, passes = [], []
    for entry in value:
        if not isinstance(entry, Mapping):
            continue
        docs, bound = entry.get("documents"), entry.get("heldout_per_word_bound")
        if not all(isinstance(v, numbers.Real) and math.isfinite(float(v)) for v in (docs, bound)):
            continue
        perp = entry.get("perplexity")
        if not isinstance(perp, numbers.Real):
            perp = math.exp(-float(bound)) if float(bound) > -700 else math.inf
        points.append(HistoryPoint(float(docs), float(bound), float(perp)))
        passes.append(entry.get("pass") if isinstance(entry.get("pass"), numbers.Integral) else None)
    if len(points) < len(value):
        logger.warning("%d of %d entries of model.info['history'] lack numeric 'documents' and "
                       "'heldout_per_word_bound': left out", len(value) - len(points), len(value))
    if per_pass:
        for p in points:
            p.pass_end = p.documents > 0 and p.documents % per_pass == 0
    elif passes and None not in passes:
        for i in range(len(points) - 1):
            points[i].pass_end = passes[i + 1] != passes[i]
    return sorted(points, key=lambda p: p.documents)


def _model_facts(model: Any, k: int, v: int) -> list[tuple[str, str]]:
    facts = [("topics", format_value(k)), ("vocabulary", f"{v:,} words")]
    numdocs = getattr(model.state, "numdocs", None)
    facts.append(("documents trained on", format_value(numdocs)))
    dtype = getattr(model, "dtype", None)
    if dtype is not None:
        facts.append(("dtype", np.dtype(dtype).name))
    alpha = getattr(model, "alpha", None)
    if alpha is not None:
        a = np.asarray(alpha, dtype=np.float64).ravel()
        if a.size and np.all(a == a[0]):
            facts.append(("alpha", f"symmetric, {fmt_num(a[0], 4)}"))
        elif a.size:
            facts.append(("alpha", f"{fmt_num(a.min(), 3)} to {fmt_num(a.max(), 3)} (mean {fmt_num(a.mean(), 3)})"))
    eta = getattr(getattr(model, "state", None), "eta", None)
    if eta is not None:
        e = np.asarray(eta, dtype=np.float64).ravel()
        if e.size:
            facts.append(("eta", fmt_num(e[0], 4) if np.all(e == e[0]) else f"mean {fmt_num(e.mean(), 4)}"))
    return facts


def collect(model: Any, top_words: int = 12) -> ReportData:
    """Gather what the report shows from a trained model.

    Parameters
    ----------
    model : LdaModel
        A model with ``get_topics()``, ``state.sstats`` and ``id2word``; the optional
        ``model.info`` dict supplies ``corpus``, ``training``, ``history`` and ``coherence``.
    top_words : int
        Words shown per topic.

    Returns
    -------
    ReportData

    Raises
    ------
    TypeError
        When ``model`` lacks ``get_topics()`` or ``state`` (it is not a trained model).
    ValueError
        When the topics are not a finite, non-negative (K, V) matrix.
    """
    if not callable(getattr(model, "get_topics", None)) or getattr(model, "state", None) is None:
        raise TypeError(f"write_report needs a trained LdaModel (with get_topics() and a state), "
                        f"got {type(model).__name__}")
    topics = np.asarray(model.get_topics(), dtype=np.float64)
    if topics.ndim != 2 or topics.shape[0] < 1 or topics.shape[1] < 1:
        raise ValueError(f"the model's topics must be a (num_topics, num_terms) matrix, got shape {topics.shape}")
    if not np.all(np.isfinite(topics)) or np.any(topics < 0):
        raise ValueError("the model's topics contain negative, NaN or infinite values")
    k, v = topics.shape
    topics = topics / topics.sum(axis=1, keepdims=True)
    info = getattr(model, "info", None) or {}
    if not isinstance(info, Mapping):
        logger.warning("model.info is a %s, not a dict: ignored", type(info).__name__)
        info = {}
    words, probs = _top_words(topics, getattr(model, "id2word", None) or {}, top_words)
    coords = classical_mds(js_distances(topics)) if k > 1 else np.zeros((1, 2))
    return ReportData(
        num_topics=k,
        num_terms=v,
        model_facts=_model_facts(model, k, v),
        corpus_facts=_facts(info.get("corpus"), "corpus"),
        training_facts=_facts(info.get("training"), "training"),
        words=words,
        probs=probs,
        sizes=_sizes(model, k),
        coherence=_coherence(info.get("coherence"), k),
        history=_history(info.get("history"), _positive_int(info.get("corpus"), "documents")),
        coords=coords,
        train_documents=_positive_int(info.get("corpus"), "documents"),
        chunksize=_positive_int(info.get("training"), "chunksize"),
    )
