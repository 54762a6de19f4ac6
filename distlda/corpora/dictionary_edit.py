"""Changing a :class:`~distlda.corpora.dictionary.Dictionary` after it is built: filtering, renumbering, merging.

:class:`VocabularyEditsMixin` holds the gensim-compatible methods that remove,
renumber or add tokens, apart from the code that builds the mapping from
documents. Filtering and pruning keep gensim's order of ids and tie-breaking,
so both libraries keep the same tokens with the same ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

import numpy as np

from distlda.validation import is_integer

__all__ = ["VocabTransform", "VocabularyEditsMixin"]

logger = logging.getLogger(__name__)


class VocabularyEditsMixin:
    """Filtering, renumbering and merging of a token-id mapping with document statistics.

    Expects ``token2id``, ``id2token``, ``dfs``, ``cfs``, ``num_docs``, ``num_pos``,
    ``num_nnz`` and a ``_sync_id2token()`` method on the class it is mixed into
    (:class:`~distlda.corpora.dictionary.Dictionary`).
    """

    token2id: dict[str, int]
    id2token: dict[int, str]
    dfs: dict[int, int]
    cfs: dict[int, int]
    num_docs: int
    num_pos: int | float
    num_nnz: int

    def _sync_id2token(self) -> dict[int, str]:  # pragma: no cover - provided by the Dictionary
        raise NotImplementedError

    def filter_extremes(self, no_below: int = 5, no_above: float = 0.5, keep_n: int | None = 100000,
                        keep_tokens: Iterable[str] | None = None) -> None:
        """Keep tokens in at least ``no_below`` documents and at most ``no_above`` of them.

        Parameters
        ----------
        no_below : int, optional
            Minimum document frequency (absolute number of documents).
        no_above : float, optional
            Maximum document frequency, as a fraction of ``num_docs``.
        keep_n : int or None, optional
            Then keep only the ``keep_n`` tokens of highest document frequency
            (``None``: all of them).
        keep_tokens : iterable of str, optional
            Tokens kept whatever their frequency.

        Notes
        -----
        Ids are renumbered afterwards (:meth:`compactify`), so corpora built with
        the old ids must be rebuilt.
        """
        if not isinstance(no_below, (int, float, np.number)) or isinstance(no_below, bool) or no_below < 0:
            raise ValueError(f"no_below must be a non-negative number of documents, got {no_below!r}")
        if not isinstance(no_above, (int, float, np.number)) or not 0 <= no_above <= 1:
            raise ValueError(f"no_above must be a fraction between 0 and 1, got {no_above!r}")
        if keep_n is not None and (not is_int(keep_n) or keep_n < 0):
            raise ValueError(f"keep_n must be a non-negative integer or None, got {keep_n!r}")
        if isinstance(keep_tokens, str):
            raise TypeError("keep_tokens must be a collection of tokens, not a single string")
        no_above_abs = int(no_above * self.num_docs)
        dfs = self.dfs
        keep_ids = {self.token2id[t] for t in keep_tokens or () if t in self.token2id}
        good = [i for i in self.token2id.values()
                if no_below <= dfs.get(i, 0) <= no_above_abs or i in keep_ids]
        if keep_ids:
            good.sort(key=lambda i: self.num_docs if i in keep_ids else dfs.get(i, 0), reverse=True)
        else:
            good.sort(key=lambda i: dfs.get(i, 0), reverse=True)
        if keep_n is not None:
            good = good[:keep_n]
        logger.info("keeping %i tokens in at least %s documents and at most %i (%s of %i), keep_n=%s",
                    len(good), no_below, no_above_abs, no_above, self.num_docs, keep_n)
        self.filter_tokens(good_ids=good)
        logger.info("resulting dictionary: %s", self)

    def filter_n_most_frequent(self, remove_n: int) -> None:
        """Remove the ``remove_n`` tokens of highest document frequency (ids are renumbered)."""
        if not is_int(remove_n) or remove_n < 0:
            raise ValueError(f"remove_n must be a non-negative integer, got {remove_n!r}")
        dfs = self.dfs
        by_df = sorted(self.token2id.values(), key=lambda i: dfs.get(i, 0), reverse=True)
        removed = by_df[:remove_n]
        logger.info("removing the %i most frequent tokens", len(removed))
        self.filter_tokens(bad_ids=removed)

    def filter_tokens(self, bad_ids: Iterable[int] | None = None, good_ids: Iterable[int] | None = None) -> None:
        """Remove the ids in ``bad_ids`` and/or keep only those in ``good_ids``, then :meth:`compactify`."""
        if bad_ids is not None:
            bad = set(bad_ids)
            self.token2id = {t: i for t, i in self.token2id.items() if i not in bad}
            self.dfs = {i: n for i, n in self.dfs.items() if i not in bad}
            self.cfs = {i: n for i, n in self.cfs.items() if i not in bad}
        if good_ids is not None:
            good = set(good_ids)
            self.token2id = {t: i for t, i in self.token2id.items() if i in good}
            self.dfs = {i: n for i, n in self.dfs.items() if i in good}
            self.cfs = {i: n for i, n in self.cfs.items() if i in good}
        self.compactify()

    def compactify(self) -> None:
        """Renumber ids to ``0 .. len(self) - 1``, keeping their relative order."""
        idmap = {old: new for new, old in enumerate(sorted(self.token2id.values()))}
        self.token2id = {t: idmap[i] for t, i in self.token2id.items()}
        self.id2token = {i: t for t, i in self.token2id.items()}
        self.dfs = {idmap[i]: n for i, n in self.dfs.items() if i in idmap}
        self.cfs = {idmap[i]: n for i, n in self.cfs.items() if i in idmap}

    def patch_with_special_tokens(self, special_token_dict: Mapping[str, int]) -> None:
        """Give the tokens of ``special_token_dict`` the ids it names; displaced tokens get other ids."""
        self._sync_id2token()
        spare: list[int] = []
        for token, idx in special_token_dict.items():
            if self.token2id.get(token) == idx:
                continue
            if token in self.token2id:
                spare.append(self.token2id.pop(token))
            old_token = self.id2token[idx]
            self.token2id[token] = idx
            self.token2id[old_token] = spare.pop() if spare else len(self.token2id) - 1
            self.id2token = {i: t for t, i in self.token2id.items()}
        self.id2token = {i: t for t, i in self.token2id.items()}

    def merge_with(self, other: Mapping[int, str]) -> "VocabTransform":
        """Add the tokens of ``other`` (a Dictionary or an id-to-token mapping) to this one.

        Known tokens keep their ids, new tokens get new ids; document statistics of
        ``other`` are added when it has them.

        Returns
        -------
        VocabTransform
            Converts documents written with ``other``'s ids to this dictionary's ids:
            ``transform[bow]`` or ``transform[corpus]``.
        """
        self._sync_id2token()
        old2new: dict[int, int] = {}
        other_dfs = getattr(other, "dfs", {})
        other_cfs = getattr(other, "cfs", {})
        for other_id, other_token in other.items():
            new_id = self.token2id.get(other_token)
            if new_id is None:
                new_id = len(self.token2id)
                self.token2id[other_token] = new_id
                self.id2token[new_id] = other_token
                self.dfs[new_id] = 0
            old2new[other_id] = new_id
            if other_id in other_dfs:
                self.dfs[new_id] = self.dfs.get(new_id, 0) + other_dfs[other_id]
            if other_id in other_cfs:
                self.cfs[new_id] = self.cfs.get(new_id, 0) + other_cfs[other_id]
        for attr in ("num_docs", "num_nnz", "num_pos"):
            setattr(self, attr, getattr(self, attr) + getattr(other, attr, 0))
        return VocabTransform(old2new)


class VocabTransform:
    """Re-number the ids of bag-of-words documents (returned by :meth:`Dictionary.merge_with`).

    Parameters
    ----------
    old2new : dict of (int, int)
        Old id to new id; entries whose id is not in it are dropped.
    """

    def __init__(self, old2new: Mapping[int, int]):
        self.old2new = dict(old2new)

    def __getitem__(self, bow: Any) -> Any:
        """Transform one document (result sorted by id), or lazily a whole corpus."""
        if isinstance(bow, (list, tuple)) and (not bow or _is_entry(bow[0])):
            old2new = self.old2new
            return sorted((old2new[i], w) for i, w in bow if i in old2new)
        return _TransformedCorpus(self, bow)


class _TransformedCorpus:
    """A corpus seen through a :class:`VocabTransform`, re-iterable like the corpus itself."""

    def __init__(self, transform: VocabTransform, corpus: Iterable[Any]):
        self.transform, self.corpus = transform, corpus

    def __iter__(self) -> Iterator[list[tuple[int, Any]]]:
        for doc in self.corpus:
            yield self.transform[list(doc)]

    def __len__(self) -> int:
        return len(self.corpus)  # type: ignore[arg-type]


def _is_entry(obj: Any) -> bool:
    """Whether ``obj`` looks like one ``(id, weight)`` entry rather than a document."""
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], (int, np.integer))


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (numpy integers included), but not a bool."""
    return is_integer(value)
