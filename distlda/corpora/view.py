"""A selection of documents of an indexable corpus: what ``corpus[2:10]`` or ``corpus[[1, 5]]`` return.

Like gensim's ``SlicedCorpus`` the view holds no documents: it reads them from the
corpus each time it is iterated. Increasing selections are read in one pass over
the corpus; others document by document through ``corpus[i]``.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ["CorpusView", "CorpusIndexError", "selection_rows"]


class CorpusIndexError(TypeError, ValueError):
    """A corpus index that is neither an integer, a slice, a list nor an array of integers.

    Both a TypeError (what Python sequences raise) and a ValueError (what gensim's
    corpora raise), so code written for either catches it.
    """


def selection_rows(selection: Any, num_docs: int, owner: str) -> range | np.ndarray:
    """The document numbers a slice, list or integer array selects (negative numbers count from the end).

    Raises
    ------
    CorpusIndexError
        When ``selection`` is of another kind, or an array of non-integers.
    IndexError
        When a number is out of range.
    """
    if isinstance(selection, slice):
        return range(num_docs)[selection]
    if isinstance(selection, range):  # what a view of a view passes on
        ends = (selection[0], selection[-1]) if len(selection) else (0, 0)
        if len(selection) and not (0 <= min(ends) and max(ends) < num_docs):
            raise IndexError(f"{selection} is out of range for a corpus of {num_docs} documents")
        return selection
    if not isinstance(selection, (list, np.ndarray)):
        raise CorpusIndexError(f"{owner} indices must be integers, slices, lists or arrays of integers, "
                               f"not {type(selection).__name__}")
    rows = np.asarray(selection)
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise CorpusIndexError(f"{owner} index arrays must be one-dimensional integers, got {rows.dtype} "
                               f"of shape {rows.shape}")
    rows = rows.astype(np.int64)
    bad = (rows < -num_docs) | (rows >= num_docs)
    if bad.any():
        raise IndexError(f"document {int(rows[bad][0])} is out of range for a corpus of {num_docs} documents")
    return np.where(rows < 0, rows + num_docs, rows)


class CorpusView:
    """Documents ``rows`` of ``corpus``, read again at every iteration.

    Parameters
    ----------
    corpus : iterable of documents supporting ``corpus[i]`` and ``len``
        Usually an :class:`~distlda.corpora.MmCorpus`.
    selection : slice, list of int or numpy integer array
        Which documents, in which order; repeats allowed.
    """

    def __init__(self, corpus: Any, selection: Any):
        self.corpus = corpus
        self._rows = selection_rows(selection, len(corpus), type(corpus).__name__)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"CorpusView({len(self)} documents of {self.corpus!r})"

    def __getitem__(self, selection: Any) -> Any:
        """A document of the view, or a view of the view."""
        if isinstance(selection, (slice, list, np.ndarray)):
            picked = selection_rows(selection, len(self), "CorpusView")
            if isinstance(picked, range) and isinstance(self._rows, range):  # stays a range: no array
                first, step = self._rows.start, self._rows.step
                return CorpusView(self.corpus, range(first + picked.start * step, first + picked.stop * step,
                                                     picked.step * step))
            return CorpusView(self.corpus, np.asarray(self._rows)[np.asarray(picked, dtype=np.int64)])
        if not isinstance(selection, (int, np.integer)):
            raise CorpusIndexError(f"CorpusView indices must be integers, slices, lists or arrays, "
                                   f"not {type(selection).__name__}")
        return self.corpus[int(self._rows[selection])]

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        rows = self._rows
        if len(rows) == 0:
            return iter(())
        increasing = rows.step > 0 if isinstance(rows, range) else bool(np.all(np.diff(rows) >= 0))
        if increasing:
            return _pick(iter(self.corpus), rows)
        return (self.corpus[int(row)] for row in rows)


def _pick(documents: Iterator[Any], rows: Sequence[int]) -> Iterator[Any]:
    """The documents at increasing positions ``rows`` of a stream, stopping after the last one."""
    position = -1
    document: Any = None
    for row in rows:
        while position < row:
            document = next(documents)
            position += 1
        yield list(document)  # a copy: a row selected twice gives two lists
