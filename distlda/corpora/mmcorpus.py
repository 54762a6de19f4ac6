"""Matrix Market corpora: gensim's ``MmCorpus`` file format, read and written in blocks.

The format is the coordinate form gensim writes::

    %%MatrixMarket matrix coordinate real general
    num_docs num_terms num_nnz
    doc term value          (1-based indices, documents in non-decreasing order)

Reading parses blocks of a few megabytes with a numba kernel and assembles
:class:`~distlda.corpora.csr.CsrChunk` objects with numpy, so no Python code runs per
document or per entry on the fast path (:meth:`MmCorpus.iter_chunks`); bag-of-words
iteration builds each document with C-level iterators only. Writing formats whole
chunks at once the same way. Files may be plain, ``.gz`` or ``.bz2``, or file objects.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
from typing import Any, Generator, Iterator

import numpy as np

from distlda.corpora.csr import CsrChunk, document_number, validate_chunk
from distlda.corpora.fileio import BinarySource
from distlda.corpora.mmparse import Blocks, Header
from distlda.corpora.mmwrite import HEADER_LINE, write_corpus, write_gensim_index
from distlda.corpora.view import CorpusIndexError, CorpusView
from distlda.validation import is_integer

__all__ = ["MmCorpus", "HEADER_LINE", "write_corpus"]

logger = logging.getLogger(__name__)

_BLOCK_BYTES = 4 << 20  # bytes parsed per kernel call
_INDEX_BLOCK_BYTES = 256 << 10  # granularity of the random-access index
_BOW_CHUNK_DOCS = 1 << 16  # documents assembled at once for bag-of-words iteration
_BOW_PIECE_ENTRIES = 1 << 14  # pairs made at once for bag-of-words iteration
_MIN_EMPTY_RUN = 16  # empty documents in a row made without slicing
_UNSET = object()


class MmCorpus:
    """A corpus in a Matrix Market file, streamed as bag-of-words documents or CSR chunks.

    A drop-in for gensim's ``MmCorpus``: iteration, ``len``, ``corpus[i]``, slices and
    lists or arrays of document numbers (a :class:`~distlda.corpora.view.CorpusView`),
    ``index`` and ``docbyoffset``, ``serialize`` with gensim's ``.index`` file.

    Parameters
    ----------
    fname : str, path-like or file object
        A ``.mm`` file, plain or compressed (``.gz``, ``.bz2``), such as gensim's
        ``MmCorpus.serialize`` or :meth:`MmCorpus.serialize` write; or a seekable
        file object, read from its start and left open (one position is shared, so
        two passes over it must not overlap). An empty file is an empty corpus.

    Attributes
    ----------
    num_docs, num_terms, num_nnz : int
        Sizes declared in the file header.

    Raises
    ------
    ValueError
        When the file is not a Matrix Market coordinate file; errors in the entries
        (field count, non-numeric values, indices outside the declared sizes,
        documents out of order, fewer or more entries than declared) are raised
        while reading, naming the file and the line.

    Notes
    -----
    Random access needs no ``.index`` file: the first ``corpus[i]`` scans the file
    once and keeps one offset per 256 KiB. A ``.index`` file beside the corpus is never
    read (gensim's are pickles); :attr:`index` is computed from the corpus itself.
    """

    def __init__(self, fname: Any):
        self._source = BinarySource(fname)
        self.fname = self._source.name
        with self._source.open() as fh:
            self._header = Header(self.fname, fh)
        self.num_docs = self._header.num_docs
        self.num_terms = self._header.num_terms
        self.num_nnz = self._header.num_nnz
        self._blocks_index: tuple[list[int], list[int], list[int]] | None = None
        self._index: Any = _UNSET
        logger.info("accepted corpus with %i documents, %i features, %i non-zero entries",
                    self.num_docs, self.num_terms, self.num_nnz)

    def __len__(self) -> int:
        return self.num_docs

    def __str__(self) -> str:
        return f"MmCorpus({self.num_docs} documents, {self.num_terms} features, {self.num_nnz} non-zero entries)"

    __repr__ = __str__

    @property
    def index(self) -> np.ndarray | None:
        """Byte offset of each document's first line, -1 for an empty document (gensim's ``index``).

        Computed on first use by one pass over the file, as gensim's writer would
        have recorded it; assign an array (or None) to replace it, as in gensim.
        """
        if self._index is _UNSET:
            self._index = self._document_offsets()
        return self._index

    @index.setter
    def index(self, value: Any) -> None:
        self._index = None if value is None else np.asarray(value)

    # ------------------------------------------------------------------ reading

    def _blocks(self, block_bytes: int, seen: list[int]) -> Iterator[tuple[Any, ...]]:
        """The entries block by block (arrays reused): ``(offset, line, docs, terms, vals, text)``.

        ``seen[0]`` counts the entries; the caller checks it with :meth:`_check_count` once
        it has given out what it read, so a pass yields every document before failing.
        """
        blocks = Blocks(self.fname, self._header, block_bytes)
        with self._source.open() as fh:
            fh.seek(self._header.body_offset)
            for block in blocks.read(fh, self._header.lines + 1):
                seen[0] += len(block[2])
                if seen[0] > self.num_nnz:
                    raise ValueError(f"{self.fname}: more entries than the {self.num_nnz} declared in the header")
                yield block

    def _check_count(self, seen: list[int]) -> None:
        if seen[0] != self.num_nnz:
            raise ValueError(f"{self.fname}: truncated or corrupt, the header declares {self.num_nnz} entries "
                             f"but the file holds {seen[0]}")

    def _chunks(self, chunksize: int, start: int, last_check: bool = False) -> Iterator[CsrChunk]:
        """CSR chunks of ``chunksize`` documents (unvalidated counts).

        The number of entries is checked before the chunks after the last entry, or
        with ``last_check`` after them: bag-of-words iteration gives out every document
        it read before failing, as gensim's reader would.
        """
        first = 0  # first document of the next chunk
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        seen = [0]
        for _, _, docs, terms, vals, _ in self._blocks(_BLOCK_BYTES, seen):
            if len(docs) == 0:
                continue
            pending.append((docs.copy(), terms.copy(), vals.copy()))
            complete = (int(docs[-1]) - first) // chunksize  # chunks that end at or before the last doc seen
            if complete > 0:
                d, t, v = (np.concatenate(a) if len(pending) > 1 else a[0] for a in zip(*pending))
                used = yield from _emit(d, t, v, first, chunksize, complete, self.num_docs, start)
                pending = [(d[used:], t[used:], v[used:])]
                first += complete * chunksize
        if pending:
            d, t, v = (np.concatenate(a) for a in zip(*pending))
        else:
            d, t, v = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64)
        remaining = -(-(self.num_docs - first) // chunksize)
        if not last_check:
            self._check_count(seen)
        yield from _emit(d, t, v, first, chunksize, remaining, self.num_docs, start)
        self._check_count(seen)

    def iter_chunks(self, chunksize: int, start: int = 0) -> Iterator[CsrChunk]:
        """Stream the corpus as validated CSR chunks of ``chunksize`` documents.

        Parameters
        ----------
        chunksize : int
            Documents per chunk (the last chunk may be shorter).
        start : int, optional
            Added to the document numbers: chunk ``start`` is ``start`` plus the
            number of its first document in the file.

        Yields
        ------
        CsrChunk
            With int32 ids and float64 counts; documents without entries are empty rows.
        """
        if not is_integer(chunksize) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
        for chunk in self._chunks(int(chunksize), int(start)):
            try:
                validate_chunk(chunk, self.num_terms)
            except ValueError as exc:
                raise ValueError(f"{self.fname}: {exc}") from None
            yield chunk

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        """Yield each document as a bag-of-words list ``[(term_id, value), ...]`` (0-based ids)."""
        # chained C-level iterators: no Python frame runs per document
        return itertools.chain.from_iterable(map(_bow_docs, self._chunks(_BOW_CHUNK_DOCS, 0, last_check=True)))

    def _build_index(self) -> tuple[list[int], list[int], list[int]]:
        """Body offset, first line and first document of every small block, for random access."""
        offsets, lines, firsts = [], [], []
        seen = [0]
        for offset, line, docs, _, _, _ in self._blocks(_INDEX_BLOCK_BYTES, seen):
            if len(docs):
                offsets.append(offset)
                lines.append(line)
                firsts.append(int(docs[0]))
        self._check_count(seen)
        return offsets, lines, firsts

    def _document_offsets(self) -> np.ndarray:
        """gensim's index: where each document's first line starts, -1 for empty documents but the last."""
        result = np.full(self.num_docs, -1, dtype=np.int64)
        seen = [0]
        end = self._header.body_offset
        for offset, _, docs, _, _, text in self._blocks(_BLOCK_BYTES, seen):
            end = self._header.body_offset + offset + len(text)
            if len(docs) == 0:
                continue
            starts = _entry_line_starts(text)
            first = np.flatnonzero(np.concatenate(([True], docs[1:] != docs[:-1])))
            new = result[docs[first]] < 0  # a document continued from the previous block keeps its start
            result[docs[first[new]]] = self._header.body_offset + offset + starts[first[new]]
        self._check_count(seen)
        if self.num_docs and result[-1] < 0:
            result[-1] = end  # where gensim's writer stood after the last document
        return result

    def __getitem__(self, docno: Any) -> Any:
        """Document ``docno`` as bag-of-words, or a :class:`CorpusView` for a slice, list or array of numbers.

        Reads a small part of the file (slow for compressed files); the first call
        scans the file once to index it.
        """
        if isinstance(docno, (slice, list, np.ndarray)):
            self._require_index()
            return CorpusView(self, docno)
        if not isinstance(docno, (int, np.integer)):
            raise CorpusIndexError(f"MmCorpus indices must be integers, slices, lists or arrays of integers, "
                                   f"not {type(docno).__name__}")
        n = document_number(docno, self.num_docs, "MmCorpus")
        self._require_index()
        if self._index is not _UNSET:
            return self.docbyoffset(int(self._index[n]))
        if self._blocks_index is None:
            self._blocks_index = self._build_index()
        offsets, lines, firsts = self._blocks_index
        if not offsets:
            return []
        b = max(bisect.bisect_left(firsts, n) - 1, 0)
        return self._read_document(n, self._header.body_offset + offsets[b], lines[b], self.fname)

    def _require_index(self) -> None:
        if self._index is None:  # as in gensim, once the user has removed the index
            raise RuntimeError("Cannot call corpus[docid] without an index (corpus.index was set to None)")

    def docbyoffset(self, offset: int) -> list[tuple[int, float]]:
        """The document whose first line starts at byte ``offset`` (an entry of :attr:`index`); -1 gives ``[]``."""
        if offset == -1:
            return []
        if not is_integer(offset) or offset < self._header.body_offset:
            raise ValueError(f"{self.fname}: byte offset {offset!r} is not in the body of the file")
        return self._read_document(None, int(offset), 1, f"{self.fname} (from byte offset {offset})")

    def _read_document(self, docno: int | None, position: int, line: int, where: str) -> list[tuple[int, float]]:
        """Document ``docno`` (None: the first one met), reading forward from byte ``position``."""
        blocks = Blocks(where, self._header, _INDEX_BLOCK_BYTES)
        ids: list[int] = []
        vals: list[float] = []
        with self._source.open() as fh:
            fh.seek(position)
            body_offset = position - self._header.body_offset
            for _, _, docs, terms, values, _ in blocks.read(fh, line, offset=body_offset):
                if len(docs) == 0:
                    continue
                if docno is None:
                    docno = int(docs[0])
                lo, hi = np.searchsorted(docs, [docno, docno + 1])
                ids.extend(terms[lo:hi].tolist())
                vals.extend(values[lo:hi].tolist())
                if docs[-1] > docno:
                    break
        return list(zip(ids, vals))

    # ------------------------------------------------------------------ writing

    @staticmethod
    def save_corpus(fname: str | os.PathLike, corpus: Any, id2word: Any = None, progress_cnt: int | None = 1000,
                    metadata: bool = False) -> list[int]:
        """Write ``corpus`` to ``fname`` in Matrix Market format and return each document's byte offset.

        gensim's signature; :meth:`serialize` also writes the offsets as a ``.index``
        file. See :func:`~distlda.corpora.mmwrite.write_corpus` for the format.
        """
        if metadata and hasattr(corpus, "metadata"):
            raise NotImplementedError("metadata=True is not supported for a corpus with metadata: gensim stores "
                                      "document metadata with pickle, which distlda does not use")
        return write_corpus(fname, corpus, num_terms=len(id2word) if id2word is not None else None,
                            progress_cnt=progress_cnt).tolist()

    @classmethod
    def serialize(cls, fname: str | os.PathLike, corpus: Any, id2word: Any = None, index_fname: Any = None,
                  progress_cnt: int | None = None, labels: Any = None, metadata: bool = False) -> None:
        """Write ``corpus`` to ``fname`` in Matrix Market format (streamed), and its ``.index``.

        Parameters
        ----------
        fname : str or path-like
            Output file; ``.gz`` and ``.bz2`` names are compressed.
        corpus : iterable of list of (int, number)
            Bag-of-words documents, or anything :func:`distlda.corpora.csr.iter_chunks`
            accepts (a CSR chunk, a scipy sparse matrix, another corpus reader).
        id2word : mapping, optional
            Its length is the number of terms written in the header (else the
            corpus's ``num_terms`` attribute, else the largest id plus one).
        index_fname : str or path-like, optional
            Where the index goes (default ``fname + ".index"``): gensim's format, so
            gensim indexes the file too; distlda itself never reads it.
        progress_cnt : int, optional
            Log progress every this many documents.
        labels : None
            gensim's argument for formats with class labels; Matrix Market has none,
            and like gensim's MmCorpus any other value raises TypeError.
        metadata : bool, optional
            As in gensim, ignored for a corpus without a ``metadata`` attribute; for
            one with it, NotImplementedError (gensim pickles document metadata).
        """
        if labels is not None:
            raise TypeError("MmCorpus.serialize: the Matrix Market format has no class labels (labels must be None)")
        offsets = cls.save_corpus(fname, corpus, id2word, progress_cnt=progress_cnt, metadata=metadata)
        path = os.fspath(fname) + ".index" if index_fname is None else index_fname
        write_gensim_index(path, np.asarray(offsets, dtype=np.int64))


def _emit(d: np.ndarray, t: np.ndarray, v: np.ndarray, first: int, chunksize: int, count: int,
          num_docs: int, start: int) -> Generator[CsrChunk, None, int]:
    """Yield ``count`` chunks beginning at document ``first`` from sorted entries; return entries used."""
    if count <= 0:
        return 0
    bounds = np.minimum(first + chunksize * np.arange(count + 1, dtype=np.int64), num_docs)
    pos = np.searchsorted(d, bounds, side="left")
    for j in range(count):
        lo, hi = int(pos[j]), int(pos[j + 1])
        n_docs = int(bounds[j + 1] - bounds[j])
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        if hi > lo:  # a range without entries keeps its zeros
            np.cumsum(np.bincount(d[lo:hi] - bounds[j], minlength=n_docs), out=indptr[1:])
        yield CsrChunk(indptr, t[lo:hi], v[lo:hi], start + int(bounds[j]))
    return int(pos[count])


def _bow_docs(chunk: CsrChunk) -> Iterator[list[tuple[int, float]]]:
    """The documents of a chunk as lists of ``(id, value)`` with Python numbers, by C-level iterators.

    The pairs are made for at most about ``_BOW_PIECE_ENTRIES`` entries at a time: many
    more tuples alive at once make Python's cyclic garbage collector slow everything.
    """
    if len(chunk.ids) == 0:
        return map(list, itertools.repeat((), chunk.n_docs))
    indptr = chunk.indptr
    cuts = np.searchsorted(indptr, np.arange(0, indptr[-1], _BOW_PIECE_ENTRIES), side="right") - 1
    cuts = np.unique(np.concatenate(([0], cuts, [chunk.n_docs])))
    ids, counts = chunk.ids, chunk.counts.astype(np.float64)
    pieces = (_bow_piece(ids, counts, indptr[a:b + 1]) for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()))
    return itertools.chain.from_iterable(pieces)


def _bow_piece(ids: np.ndarray, counts: np.ndarray, indptr: np.ndarray) -> Iterator[list[tuple[int, float]]]:
    """Documents ``indptr`` delimits, each a slice of one list of pairs (a new list each time).

    Long runs of empty documents are made by ``list()`` alone, several times cheaper.
    """
    lo, n = int(indptr[0]), len(indptr) - 1
    pairs = list(zip(ids[lo:indptr[-1]].tolist(), counts[lo:indptr[-1]].tolist()))
    bounds = (indptr - lo).tolist()
    empty = np.diff(indptr) == 0
    edges = np.flatnonzero(empty[1:] != empty[:-1]) + 1
    starts, ends = np.concatenate(([0], edges)), np.concatenate((edges, [n]))
    long_empty = empty[starts] & (ends - starts >= _MIN_EMPTY_RUN)
    if not long_empty.any():
        return map(pairs.__getitem__, map(slice, bounds, bounds[1:]))
    parts: list[Iterator[list[tuple[int, float]]]] = []
    done = 0
    for first, last in zip(starts[long_empty].tolist(), ends[long_empty].tolist()):
        if first > done:
            parts.append(map(pairs.__getitem__, map(slice, bounds[done:first], bounds[done + 1:first + 1])))
        parts.append(map(list, itertools.repeat((), last - first)))
        done = last
    if done < n:
        parts.append(map(pairs.__getitem__, map(slice, bounds[done:n], bounds[done + 1:])))
    return itertools.chain.from_iterable(parts)


def _entry_line_starts(text: bytes) -> np.ndarray:
    """Offsets in ``text`` of its lines that hold something other than blanks (one per entry)."""
    buf = np.frombuffer(text, dtype=np.uint8)
    newline = buf == 10
    line_of = np.cumsum(newline) - newline  # a newline belongs to the line it ends
    content = (buf != 32) & (buf != 9) & (buf != 13) & ~newline
    line_starts = np.concatenate(([0], np.flatnonzero(newline) + 1))
    return line_starts[np.unique(line_of[content])]
