"""Chunks of documents held as CSR arrays, and conversion from bag-of-words input.

Everything past the edge of the library (corpus readers, the E-step, the wire)
works on :class:`CsrChunk`: three flat arrays and the global number of the first
document. Lists of ``(term_id, count)`` tuples are converted once, here, and
validated once, here, with error messages that name the offending document.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from distlda.validation import is_integer

__all__ = [
    "CsrChunk",
    "bow_to_chunk",
    "chunk_from_arrays",
    "concat_chunks",
    "iter_chunks",
    "validate_chunk",
]

ID_DTYPE = np.int32
COUNT_DTYPE = np.float64
INDPTR_DTYPE = np.int64


@dataclass(frozen=True)
class CsrChunk:
    """A run of consecutive documents as compressed sparse rows.

    Parameters
    ----------
    indptr : numpy.ndarray of int64, shape (n_docs + 1,)
        Document ``i`` owns entries ``indptr[i]:indptr[i + 1]``; ``indptr[0] == 0``.
    ids : numpy.ndarray of int32, shape (nnz,)
        Term ids.
    counts : numpy.ndarray of float, shape (nnz,)
        Term counts (or weights), finite and non-negative.
    start : int
        Number of the first document in the whole corpus (0-based). The E-step
        seeds each document's random initialisation from this number, so it
        must be the document's true position in the corpus.
    """

    indptr: np.ndarray
    ids: np.ndarray
    counts: np.ndarray
    start: int = 0

    @property
    def n_docs(self) -> int:
        """Number of documents in the chunk."""
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        """Number of stored (term, count) entries."""
        return int(self.indptr[-1]) if len(self.indptr) else 0

    def __len__(self) -> int:
        return self.n_docs

    def doc_lengths(self) -> np.ndarray:
        """Number of entries of each document."""
        return np.diff(self.indptr)

    def num_words(self) -> float:
        """Total of all counts (the number of tokens for integer counts)."""
        return float(self.counts.sum())

    def doc(self, i: int) -> list[tuple[int, float]]:
        """Document ``i`` of the chunk (0-based, relative to the chunk) as bag-of-words."""
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        return [(int(t), _as_number(c)) for t, c in zip(self.ids[lo:hi], self.counts[lo:hi])]

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        for i in range(self.n_docs):
            yield self.doc(i)

    def slice(self, lo: int, hi: int) -> "CsrChunk":
        """Documents ``lo:hi`` of this chunk as a new chunk (arrays are views where possible)."""
        lo = max(0, min(lo, self.n_docs))
        hi = max(lo, min(hi, self.n_docs))
        a, b = int(self.indptr[lo]), int(self.indptr[hi])
        return CsrChunk(self.indptr[lo:hi + 1] - a, self.ids[a:b], self.counts[a:b], self.start + lo)

    def for_kernels(self, dtype: Any) -> "CsrChunk":
        """The same chunk as the compiled kernels take it: counts of ``dtype``, every array C-contiguous,
        aligned and writable (copied only where needed).

        numba compiles a separate version of a kernel for read-only or unaligned arrays (a memory-mapped
        corpus, a network buffer), and separate versions may round differently on some CPUs; handing the
        kernels one kind of array keeps a model's result independent of where its documents came from.
        """
        indptr = np.require(self.indptr, INDPTR_DTYPE, "CAW")
        ids = np.require(self.ids, ID_DTYPE, "CAW")
        counts = np.require(self.counts, dtype, "CAW")
        if indptr is self.indptr and ids is self.ids and counts is self.counts:
            return self
        return CsrChunk(indptr, ids, counts, self.start)

    def max_id(self) -> int:
        """Largest term id, or -1 for a chunk with no entries."""
        return int(self.ids.max()) if len(self.ids) else -1


def _as_number(c: float) -> float | int:
    c = float(c)
    return int(c) if c.is_integer() else c


def chunk_from_arrays(indptr: Any, ids: Any, counts: Any, start: int = 0) -> CsrChunk:
    """Build a :class:`CsrChunk` from array-likes, converting to the canonical dtypes.

    Raises
    ------
    ValueError
        When the arrays are inconsistent (lengths, ``indptr`` not starting at 0
        or decreasing), or when ids or counts are invalid (see :func:`validate_chunk`).
    """
    indptr = np.ascontiguousarray(indptr)
    ids_in = np.ascontiguousarray(ids)
    counts = np.ascontiguousarray(counts)
    if indptr.ndim != 1 or len(indptr) < 1:
        raise ValueError("indptr must be a 1-D array of length n_docs + 1 (at least 1)")
    if ids_in.ndim != 1 or counts.ndim != 1:
        raise ValueError("ids and counts must be 1-D arrays")
    if len(ids_in) != len(counts):
        raise ValueError(f"ids and counts differ in length ({len(ids_in)} != {len(counts)})")
    if indptr.dtype.kind not in "iu":
        raise TypeError(f"indptr must hold integers, not {indptr.dtype}")
    indptr = indptr.astype(INDPTR_DTYPE, copy=False)
    if indptr[0] != 0 or indptr[-1] != len(ids_in) or np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must start at 0, never decrease, and end at len(ids)")
    if ids_in.dtype.kind == "f":
        if len(ids_in) and not np.all(np.isfinite(ids_in) & (ids_in == np.round(ids_in))):
            bad = int(np.flatnonzero(~(np.isfinite(ids_in) & (ids_in == np.round(ids_in))))[0])
            doc = int(np.searchsorted(indptr, bad, side="right") - 1)
            raise ValueError(f"document {start + doc}: term id {ids_in[bad]!r} is not an integer")
    elif ids_in.dtype.kind not in "iu" and len(ids_in):
        raise TypeError(f"term ids must be integers, not {ids_in.dtype}")
    if len(ids_in) and ids_in.dtype.kind in "iuf":
        too_big = np.abs(ids_in) > np.iinfo(ID_DTYPE).max
        if np.any(too_big):
            bad = int(np.flatnonzero(too_big)[0])
            doc = int(np.searchsorted(indptr, bad, side="right") - 1)
            raise ValueError(f"document {start + doc}: term id {ids_in[bad]!r} is out of range")
    ids_arr = ids_in.astype(ID_DTYPE, copy=False)
    if counts.dtype.kind not in "iuf" and len(counts):
        raise TypeError(f"counts must be numbers, not {counts.dtype}")
    counts = counts.astype(COUNT_DTYPE if counts.dtype.kind in "iu" else counts.dtype, copy=False)
    chunk = CsrChunk(indptr, ids_arr, counts, int(start))
    validate_chunk(chunk)
    return chunk


def validate_chunk(chunk: CsrChunk, num_terms: int | None = None) -> None:
    """Check ids and counts of a chunk; raise an error naming the first bad document.

    Parameters
    ----------
    chunk : CsrChunk
    num_terms : int, optional
        Vocabulary size; ids must be below it when given.

    Raises
    ------
    ValueError
        On a negative term id, a term id ``>= num_terms``, or a count that is
        negative, NaN or infinite. The message gives the document number within
        the corpus (``chunk.start + i``), the term id and the value.
    """
    ids, counts = chunk.ids, chunk.counts
    if len(ids) == 0:
        return
    problems = []
    lo = int(ids.min())
    if lo < 0:
        problems.append((int(np.flatnonzero(ids < 0)[0]), "negative term id"))
    if num_terms is not None and int(ids.max()) >= num_terms:
        first = int(np.flatnonzero(ids >= num_terms)[0])
        problems.append((first, f"term id outside the vocabulary of {num_terms} terms"))
    finite = np.isfinite(counts)
    if not finite.all():
        problems.append((int(np.flatnonzero(~finite)[0]), "count is NaN or infinite"))
    negative = counts < 0
    if negative.any():
        problems.append((int(np.flatnonzero(negative)[0]), "negative count"))
    if problems:
        pos, what = min(problems)
        doc = int(np.searchsorted(chunk.indptr, pos, side="right") - 1)
        raise ValueError(
            f"document {chunk.start + doc}: {what} (term id {int(ids[pos])}, count {float(counts[pos])!r})"
        )


def bow_to_chunk(docs: Sequence[Any], start: int = 0) -> CsrChunk:
    """Convert a sequence of bag-of-words documents into a validated :class:`CsrChunk`.

    Each document is an iterable of ``(term_id, count)`` pairs (tuples, lists or a
    numpy array of shape ``(n, 2)``), as gensim corpora yield them. Empty
    documents are kept (they become empty rows).

    Raises
    ------
    TypeError
        When a document is not an iterable of pairs, or an id or count is not a number.
    ValueError
        When an id or count is invalid (see :func:`validate_chunk`).
    """
    docs = [_as_entry_list(doc, start + i) for i, doc in enumerate(docs)]
    n = len(docs)
    lengths = np.fromiter(map(len, docs), dtype=INDPTR_DTYPE, count=n)
    indptr = np.zeros(n + 1, dtype=INDPTR_DTYPE)
    np.cumsum(lengths, out=indptr[1:])
    nnz = int(indptr[-1])
    if nnz == 0:
        return CsrChunk(indptr, np.zeros(0, ID_DTYPE), np.zeros(0, COUNT_DTYPE), int(start))
    pairs = None
    entries = itertools.chain.from_iterable(docs)
    try:
        # Fast path: every entry has two items (checked at C speed), then one flat float array.
        if sum(map(len, entries)) == 2 * nnz:
            flat = itertools.chain.from_iterable(itertools.chain.from_iterable(docs))
            pairs = np.fromiter(flat, dtype=np.float64, count=2 * nnz).reshape(nnz, 2)
    except (TypeError, ValueError):
        pairs = None
    if pairs is None:
        _raise_bad_pair(list(itertools.chain.from_iterable(docs)), indptr, start)
    ids_f = pairs[:, 0]
    integral = np.isfinite(ids_f) & (ids_f == np.floor(ids_f))
    if not integral.all():
        pos = int(np.flatnonzero(~integral)[0])
        doc = int(np.searchsorted(indptr, pos, side="right") - 1)
        raise ValueError(f"document {start + doc}: term id {float(ids_f[pos])!r} is not an integer")
    in_range = np.abs(ids_f) <= np.iinfo(ID_DTYPE).max
    if not in_range.all():
        pos = int(np.flatnonzero(~in_range)[0])
        doc = int(np.searchsorted(indptr, pos, side="right") - 1)
        raise ValueError(f"document {start + doc}: term id {float(ids_f[pos])!r} is out of range")
    chunk = CsrChunk(indptr, ids_f.astype(ID_DTYPE), np.ascontiguousarray(pairs[:, 1]), int(start))
    validate_chunk(chunk)
    return chunk


def _as_entry_list(doc: Any, docno: int) -> Any:
    """A document as a sized sequence of entries; TypeError naming the document otherwise."""
    if isinstance(doc, (list, tuple)):
        return doc
    if isinstance(doc, np.ndarray):
        if doc.size and (doc.ndim != 2 or doc.shape[1] != 2):
            raise TypeError(f"document {docno}: expected (term_id, count) pairs, got an array of shape {doc.shape}")
        return doc.reshape(-1, 2).tolist()
    if isinstance(doc, (str, bytes)) or not isinstance(doc, Iterable):
        raise TypeError(f"document {docno}: expected a list of (term_id, count) pairs, got {type(doc).__name__}")
    return list(doc)


def _raise_bad_pair(flat: list[Any], indptr: np.ndarray, start: int) -> None:
    """Find the first entry that is not a pair of numbers and raise a TypeError naming it."""
    for pos, entry in enumerate(flat):
        ok = False
        try:
            ok = len(entry) == 2 and all(isinstance(x, (numbers.Real, np.number)) for x in entry)
        except TypeError:
            ok = False
        if not ok:
            doc = int(np.searchsorted(indptr, pos, side="right") - 1)
            raise TypeError(
                f"document {start + doc}: entry {entry!r} is not a (term_id, count) pair of numbers"
            )
    raise TypeError("corpus entries must be (term_id, count) pairs of numbers")


def concat_chunks(chunks: Sequence[CsrChunk]) -> CsrChunk:
    """Join consecutive chunks into one; ``start`` is that of the first."""
    if not chunks:
        raise ValueError("concat_chunks needs at least one chunk")
    if len(chunks) == 1:
        return chunks[0]
    sizes = [c.nnz for c in chunks]
    offsets = np.cumsum([0] + sizes[:-1])
    indptr = np.concatenate([chunks[0].indptr[:1]] + [c.indptr[1:] + off for c, off in zip(chunks, offsets)])
    ids = np.concatenate([c.ids for c in chunks])
    counts = np.concatenate([c.counts for c in chunks])
    return CsrChunk(indptr.astype(INDPTR_DTYPE, copy=False), ids, counts, chunks[0].start)


def iter_chunks(corpus: Any, chunksize: int, start: int = 0) -> Iterator[CsrChunk]:
    """Stream ``corpus`` as validated :class:`CsrChunk` objects of ``chunksize`` documents.

    Accepted corpora:

    * objects with an ``iter_chunks(chunksize, start=...)`` method (distlda's Matrix
      Market and binary corpora, or a user's own fast reader): used directly;
    * a :class:`CsrChunk` (split into pieces);
    * a ``scipy.sparse`` matrix with one document per row;
    * any iterable of bag-of-words documents (lists of ``(term_id, count)``),
      as gensim accepts.

    Document numbers in error messages and chunk ``start`` values count from ``start``.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, got {chunksize}")
    native = getattr(corpus, "iter_chunks", None)
    if callable(native) and not isinstance(corpus, CsrChunk):
        for chunk in native(chunksize, start=start):
            yield chunk
        return
    if isinstance(corpus, CsrChunk):
        base = CsrChunk(corpus.indptr, corpus.ids, corpus.counts, start)
        for lo in range(0, max(base.n_docs, 0), chunksize):
            yield base.slice(lo, lo + chunksize)
        return
    if _is_scipy_sparse(corpus):
        csr = corpus.tocsr()
        for lo in range(0, csr.shape[0], chunksize):
            part = csr[lo:lo + chunksize]
            part.sort_indices()
            yield chunk_from_arrays(part.indptr, part.indices, part.data, start + lo)
        return
    if isinstance(corpus, (str, bytes)):
        raise TypeError("corpus must be an iterable of documents, not a string (use a corpus reader for files)")
    try:
        iterator = iter(corpus)
    except TypeError:
        raise TypeError(
            f"corpus must be an iterable of bag-of-words documents, got {type(corpus).__name__}"
        ) from None
    pos = start
    while True:
        docs = list(itertools.islice(iterator, chunksize))
        if not docs:
            return
        yield bow_to_chunk(docs, pos)
        pos += len(docs)


def _is_scipy_sparse(obj: Any) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(obj)


def document_number(docno: Any, num_docs: int, corpus: str) -> int:
    """``docno`` as an index into a corpus of ``num_docs`` documents (negative numbers count from the end).

    TypeError when it is not an integer, IndexError when it is out of range; ``corpus`` names the class.
    """
    if not is_integer(docno):
        raise TypeError(f"{corpus} indices must be integers, not {type(docno).__name__}")
    n = int(docno) + num_docs if docno < 0 else int(docno)
    if not 0 <= n < num_docs:
        raise IndexError(f"document {docno} is out of range for a corpus of {num_docs} documents")
    return n
