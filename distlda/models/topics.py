"""Questions asked of trained topics: top words, printing, coherence ranking, model differences.

:class:`TopicQueriesMixin` holds the gensim-compatible read-only methods of
:class:`~distlda.models.LdaModel` that look only at the topic-word matrix
(and alpha), so the training code stays separate from the inspection code.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

# topic_distance_matrix and DISTANCES are imported from here by existing code: they stay importable
from distlda.evaluation.distances import DISTANCES, topic_distance_matrix
from distlda.evaluation.topwords import top_ids, top_mask
from distlda.validation import is_integer

logger = logging.getLogger(__name__)

__all__ = ["TopicQueriesMixin", "topic_distance_matrix", "DISTANCES"]

class TopicQueriesMixin:
    """Read-only topic inspection; expects ``num_topics``, ``num_terms``, ``id2word``, ``alpha``
    and a ``get_topics()`` method on the class it is mixed into."""

    num_topics: int
    num_terms: int
    id2word: Any
    alpha: np.ndarray

    def get_topics(self) -> np.ndarray:  # pragma: no cover - provided by the model
        raise NotImplementedError

    def _check_topic(self, topicid: int) -> int:
        if not is_integer(topicid):
            raise TypeError(f"topicid must be an integer, got {topicid!r}")
        if not 0 <= topicid < self.num_topics:
            raise ValueError(f"topicid {topicid} is out of range: the model has {self.num_topics} topics")
        return int(topicid)

    def _word(self, term_id: int) -> str:
        try:
            return self.id2word[int(term_id)]
        except (KeyError, IndexError, TypeError):  # TypeError: a model saved without its id2word
            return str(int(term_id))

    def get_topic_terms(self, topicid: int, topn: int = 10) -> list[tuple[np.integer, np.floating]]:
        """The ``topn`` most probable words of a topic as ``(word_id, probability)`` pairs.

        As gensim's: the ids are numpy integers, the probabilities numpy floats of the model's dtype.
        """
        row = self.get_topics()[self._check_topic(topicid)]
        return [(i, row[i]) for i in top_ids(row, topn)]

    def show_topic(self, topicid: int, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` most probable words of a topic as ``(word, probability)`` pairs."""
        return [(self._word(i), float(p)) for i, p in self.get_topic_terms(topicid, topn)]

    def print_topic(self, topicno: int, topn: int = 10) -> str:
        """A topic as a string like ``0.042*"file" + 0.031*"system"``."""
        return " + ".join(f'{p:.3f}*"{w}"' for w, p in self.show_topic(topicno, topn))

    def _chosen_topics(self, num_topics: int) -> list[int]:
        if num_topics < 0 or num_topics >= self.num_topics:
            return list(range(self.num_topics))
        alpha = np.asarray(self.alpha, dtype=np.float64)
        if np.all(alpha == alpha[0]):
            return list(range(num_topics))
        order = list(np.argsort(alpha, kind="stable"))
        # As gensim: half of the topics with the smallest alpha, half with the largest.
        return [int(t) for t in order[: num_topics // 2] + order[len(order) - (num_topics - num_topics // 2):]]

    def show_topics(self, num_topics: int = 10, num_words: int = 10, log: bool = False,
                    formatted: bool = True) -> list[tuple[int, Any]]:
        """Some or all topics with their top words.

        Parameters
        ----------
        num_topics : int
            How many topics; -1 (or more than there are) for all. When fewer
            than all are asked for and alpha is not symmetric, half come from the
            smallest and half from the largest alpha values (deterministically).
        num_words : int
            Words per topic.
        log : bool
            Also log each topic at INFO level.
        formatted : bool
            Strings like :meth:`print_topic` (True) or lists of ``(word, probability)``.

        Returns
        -------
        list of (int, str or list of (str, float))
        """
        shown = []
        topics = self.get_topics()
        for t in self._chosen_topics(num_topics):
            row = topics[t]
            pairs = [(self._word(i), float(row[i])) for i in top_ids(row, num_words)]
            value: Any = " + ".join(f'{p:.3f}*"{w}"' for w, p in pairs) if formatted else pairs
            shown.append((t, value))
            if log:
                logger.info("topic #%i (%.3f): %s", t, float(self.alpha[t]), value)
        return shown

    def print_topics(self, num_topics: int = 20, num_words: int = 10) -> list[tuple[int, str]]:
        """:meth:`show_topics` with ``log=True``."""
        return self.show_topics(num_topics=num_topics, num_words=num_words, log=True)

    def get_term_topics(self, word_id: int | str,
                        minimum_probability: float | None = None) -> list[tuple[int, np.floating]]:
        """Topics in which a word is likely: ``(topic_id, p(word | topic))`` pairs (as gensim's: int topic ids,
        probabilities numpy floats of the model's dtype).

        Parameters
        ----------
        word_id : int or str
            A word id, or a word (looked up in ``id2word``).
        minimum_probability : float, optional
            Leave out topics below this probability (default: the model's
            ``minimum_probability``, at least 1e-8).
        """
        if minimum_probability is None:
            minimum_probability = getattr(self, "minimum_probability", 0.01)
        minimum_probability = max(float(minimum_probability), 1e-8)
        if isinstance(word_id, str):
            token2id = getattr(self.id2word, "token2id", None)
            if self.id2word is None:
                raise ValueError(f"cannot look up the word {word_id!r}: the model was saved without its id2word")
            if token2id is None:
                token2id = {w: i for i, w in self.id2word.items()}
            if word_id not in token2id:
                raise ValueError(f"word {word_id!r} is not in the model's vocabulary")
            word_id = token2id[word_id]
        if not is_integer(word_id) or not 0 <= word_id < self.num_terms:
            raise ValueError(f"word_id must be an integer in [0, {self.num_terms}), got {word_id!r}")
        column = self.get_topics()[:, int(word_id)]
        return [(t, column[t]) for t in range(self.num_topics) if column[t] >= minimum_probability]

    def top_topics(self, corpus: Any = None, texts: Sequence[Sequence[str]] | None = None,
                   dictionary: Any = None, window_size: int | None = None, coherence: str = "u_mass",
                   topn: int = 20, processes: int = -1) -> list[tuple[list[tuple[float, str]], float]]:
        """Topics sorted by coherence, most coherent first.

        Parameters
        ----------
        corpus : iterable of bag-of-words, optional
            Needed for 'u_mass'.
        texts : list of list of str, optional
            Tokenised documents, needed for 'c_npmi'.
        dictionary : Dictionary, optional
            Token ↔ id mapping for ``texts`` (default: the model's ``id2word``).
        window_size : int, optional
            Sliding window for 'c_npmi' (default 10).
        coherence : {'u_mass', 'c_npmi'}
        topn : int
            Words of each topic that enter the coherence.
        processes : int
            Accepted for gensim compatibility; coherence is computed in this process.

        Returns
        -------
        list of (list of (numpy.floating, str), float)
            Each topic's ``(probability, word)`` pairs (probabilities of the model's dtype, as gensim's) and
            its coherence.
        """
        from distlda.evaluation.coherence import topic_coherence

        topics = self.get_topics()
        ranked = top_ids(topics, topn)
        scores = topic_coherence([list(map(int, ids)) for ids in ranked], coherence=coherence, corpus=corpus,
                                 texts=texts, dictionary=dictionary if dictionary is not None else self.id2word,
                                 window_size=window_size)
        described = [[(topics[t][i], self._word(i)) for i in ids] for t, ids in enumerate(ranked)]
        order = sorted(range(self.num_topics), key=lambda t: (-scores[t], t))
        return [(described[t], float(scores[t])) for t in order]

    def diff(self, other: Any, distance: str = "kullback_leibler", num_words: int = 100,
             n_ann_terms: int = 10, diagonal: bool = False, annotation: bool = True,
             normed: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Distances between this model's topics and another model's.

        Parameters
        ----------
        other : model with ``get_topics()`` over the same vocabulary
        distance : {'kullback_leibler', 'hellinger', 'jaccard', 'jensen_shannon'}
            'jaccard' compares the sets of each topic's ``num_words`` top words.
        num_words : int
            Top words per topic for 'jaccard' and for the annotation.
        n_ann_terms : int
            At most this many words in each half of an annotation.
        diagonal : bool
            Only topic i against topic i (same number of topics required).
        annotation : bool
            Also return, per pair, the shared and the differing top words.
        normed : bool
            Divide by the largest distance.

        Returns
        -------
        mdiff : numpy.ndarray, shape (K1, K2) or (K,)
        annotation : numpy.ndarray of [shared words, differing words], or None
        """
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        d1, d2 = self.get_topics(), np.asarray(other.get_topics())
        if d1.shape[1] != d2.shape[1]:
            raise ValueError(f"the models have different vocabularies ({d1.shape[1]} and {d2.shape[1]} terms)")
        k1, k2 = d1.shape[0], d2.shape[0]
        if diagonal and k1 != k2:
            raise ValueError(f"diagonal=True needs the same number of topics in both models ({k1} != {k2})")
        top1, top2 = top_ids(d1, num_words), top_ids(d2, num_words)
        if distance == "jaccard":
            full = topic_distance_matrix(top_mask(d1, num_words), top_mask(d2, num_words), "jaccard")
        else:
            full = topic_distance_matrix(d1, d2, distance)
        mdiff = np.diag(full).copy() if diagonal else full
        ann = None
        if annotation:
            words1 = [set(self._word(i) for i in ids) for ids in top1]
            words2 = [set(self._word(i) for i in ids) for ids in top2]
            ann = np.empty(mdiff.shape, dtype=object)
            for idx in np.ndindex(mdiff.shape):
                a, b = (idx[0], idx[0]) if diagonal else idx
                shared = sorted(words1[a] & words2[b])[:n_ann_terms]
                differing = sorted(words1[a] ^ words2[b])[:n_ann_terms]
                ann[idx] = [shared, differing]
        if normed:
            top = np.abs(mdiff).max() if mdiff.size else 0.0
            if top > 1e-8:
                mdiff = mdiff / top
        return mdiff, ann
