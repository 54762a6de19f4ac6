"""Metrics evaluated at the end of every training pass, to watch a model learn.

Pass a list of metrics as ``LdaModel(..., callbacks=[...])``; after each pass the
model stores each metric's value in ``model.metrics[str(metric)]`` and logs it.
The names and parameters follow gensim's ``models.callbacks``: a gensim user's
code keeps working. Only the ``'shell'`` logger exists (values go to
:mod:`logging`); visdom plotting is not offered.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from distlda.evaluation.distances import topic_distance_matrix
from distlda.evaluation.topwords import top_mask

logger = logging.getLogger(__name__)

__all__ = ["Metric", "PerplexityMetric", "CoherenceMetric", "DiffMetric", "ConvergenceMetric", "Callback"]


class Metric:
    """Base class of training metrics.

    Parameters
    ----------
    logger : {'shell', None}
        'shell' logs each value at INFO level; None only records it.
    title : str, optional
        Name under which values are stored in ``model.metrics`` (default: the
        class name without "Metric", e.g. "Perplexity").
    """

    def __init__(self, logger: str | None = None, viz_env: Any = None, title: str | None = None) -> None:
        if logger not in (None, "shell"):
            raise ValueError(f"logger must be 'shell' or None (visdom is not supported), got {logger!r}")
        self.logger = logger
        self.viz_env = viz_env
        self.title = title

    def __str__(self) -> str:
        return self.title if self.title is not None else type(self).__name__[: -len("Metric")]

    def get_value(self, **kwargs: Any) -> Any:
        """The metric's value for ``model=...`` (and, for differences, ``other_model=...``)."""
        raise NotImplementedError


class PerplexityMetric(Metric):
    """Perplexity exp(−bound / words) of a corpus under the model (lower is better).

    Parameters
    ----------
    corpus : iterable of bag-of-words
        Held-out documents are the meaningful choice.
    """

    def __init__(self, corpus: Any = None, logger: str | None = None, viz_env: Any = None,
                 title: str | None = None) -> None:
        super().__init__(logger, viz_env, title)
        if corpus is None:
            raise ValueError("PerplexityMetric needs a corpus")
        self.corpus = corpus

    def get_value(self, **kwargs: Any) -> float:
        model = kwargs["model"]
        return float(np.exp(-model.per_word_bound(self.corpus)))


class CoherenceMetric(Metric):
    """Mean topic coherence ('u_mass' over a corpus, or 'c_npmi' over texts).

    Parameters
    ----------
    corpus : iterable of bag-of-words, optional
    texts : list of list of str, optional
    dictionary : Dictionary, optional
    coherence : {'u_mass', 'c_npmi'}
    window_size : int, optional
    topn : int
        Top words of each topic that enter the coherence.
    """

    def __init__(self, corpus: Any = None, texts: Sequence[Sequence[str]] | None = None, dictionary: Any = None,
                 coherence: str | None = None, window_size: int | None = None, topn: int = 10,
                 logger: str | None = None, viz_env: Any = None, title: str | None = None) -> None:
        super().__init__(logger, viz_env, title)
        self.corpus = corpus
        self.texts = texts
        self.dictionary = dictionary
        self.coherence = coherence or ("u_mass" if texts is None else "c_npmi")
        self.window_size = window_size
        self.topn = topn

    def get_value(self, **kwargs: Any) -> float:
        model = kwargs["model"]
        scored = model.top_topics(corpus=self.corpus, texts=self.texts, dictionary=self.dictionary,
                                  window_size=self.window_size, coherence=self.coherence, topn=self.topn)
        return float(np.mean([score for _, score in scored]))


class DiffMetric(Metric):
    """Distance of each topic from the same topic one pass earlier (an array, one value per topic).

    Parameters follow :meth:`LdaModel.diff`; ``diagonal`` must stay True.
    """

    def __init__(self, distance: str = "jaccard", num_words: int = 100, n_ann_terms: int = 10,
                 diagonal: bool = True, annotation: bool = False, normed: bool = True,
                 logger: str | None = None, viz_env: Any = None, title: str | None = None) -> None:
        super().__init__(logger, viz_env, title)
        if not diagonal:
            raise ValueError("DiffMetric compares each topic with itself: diagonal must be True")
        self.distance = distance
        self.num_words = num_words
        self.normed = normed

    def get_value(self, **kwargs: Any) -> np.ndarray:
        current = kwargs["model"].get_topics()
        previous = kwargs["other_model"].get_topics()
        if self.distance == "jaccard":
            current, previous = top_mask(current, self.num_words), top_mask(previous, self.num_words)
        diff = np.diag(topic_distance_matrix(current, previous, self.distance)).copy()
        if self.normed and np.abs(diff).max(initial=0.0) > 1e-8:
            diff /= np.abs(diff).max()
        return diff


class ConvergenceMetric(DiffMetric):
    """Sum over topics of :class:`DiffMetric` (a single number; falls towards 0 as training converges)."""

    def get_value(self, **kwargs: Any) -> float:
        return float(np.sum(super().get_value(**kwargs)))


class _TopicsSnapshot:
    """The topics of a model at one moment (what difference metrics compare against)."""

    def __init__(self, topics: np.ndarray) -> None:
        self._topics = topics

    def get_topics(self) -> np.ndarray:
        return self._topics


class Callback:
    """Evaluates a list of metrics at the end of each pass (used by :class:`LdaModel`).

    Parameters
    ----------
    metrics : list of Metric
    """

    def __init__(self, metrics: Sequence[Metric]) -> None:
        for m in metrics:
            if not isinstance(m, Metric):
                raise TypeError(f"callbacks must be Metric objects, got {type(m).__name__}")
        self.metrics = list(metrics)
        self.model: Any = None
        self.previous: _TopicsSnapshot | None = None

    def set_model(self, model: Any) -> None:
        """Attach the model and remember its current topics."""
        self.model = model
        self.previous = _TopicsSnapshot(model.get_topics().copy())

    def on_epoch_end(self, epoch: int, topics: Any = None) -> dict[str, Any]:
        """Evaluate every metric; return ``{name: value}``."""
        values: dict[str, Any] = {}
        for metric in self.metrics:
            value = metric.get_value(model=self.model, other_model=self.previous, topics=topics)
            values[str(metric)] = value
            if metric.logger == "shell":
                logger.info("epoch %i: %s = %s", epoch, metric, value)
        self.previous = _TopicsSnapshot(self.model.get_topics().copy())
        return values
