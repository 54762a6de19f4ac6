"""Matrix Market corpora: gensim's ``MmCorpus`` file format, read and written in blocks.

The format is the coordinate form gensim writes::

    %%MatrixMarket matrix coordinate real general
    num_docs num_terms num_nnz
    doc term value          (1-based indices, documents in non-decreasing order)

Reading parses blocks of a few megabytes with a numba kernel and assembles
:class:`~distlda.corpora.csr.CsrChunk` objects with numpy, so no Python code runs per
document or per entry on the fast path (:meth:`MmCorpus.iter_chunks`). Writing
formats whole chunks at once the same way. Files may be plain, ``.gz`` or ``.bz2``.
"""

from __future__ import annotations

import bisect
import bz2
import gzip
import logging
import os
import shutil
import tempfile
from typing import IO, Any, Generator, Iterator

import numpy as np

from distlda.corpora import mmkernels as kern
from distlda.corpora.csr import CsrChunk, document_number, iter_chunks, validate_chunk
from distlda.io.container import atomic_write
from distlda.validation import is_integer

__all__ = ["MmCorpus", "write_corpus"]

logger = logging.getLogger(__name__)

HEADER_LINE = b"%%MatrixMarket matrix coordinate real general\n"
_ACCEPTED_FIELDS = ("real", "integer")
_BLOCK_BYTES = 4 << 20  # bytes parsed per kernel call
_INDEX_BLOCK_BYTES = 256 << 10  # granularity of the random-access index
_WRITE_CHUNK_DOCS = 4096
_MAX_ID = np.iinfo(np.int32).max


def _open(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


class _Header:
    """Sizes declared by a Matrix Market file, and where its entries start."""

    def __init__(self, path: str, fh: IO[bytes]):
        first = fh.readline(4096)
        words = first.decode("latin-1").lower().split()
        if not first:
            raise ValueError(f"{path}: empty file, not a Matrix Market corpus")
        if (words[:3] != ["%%matrixmarket", "matrix", "coordinate"] or len(words) != 5
                or words[3] not in _ACCEPTED_FIELDS or words[4] != "general"):
            raise ValueError(f"{path}, line 1: not a Matrix Market 'matrix coordinate real general' header: "
                             f"{first[:80]!r}")
        lineno = 1
        while True:
            raw = fh.readline(4096)
            lineno += 1
            if not raw:
                raise ValueError(f"{path}: truncated file, no 'num_docs num_terms num_nnz' line after the header")
            if raw.startswith(b"%") or not raw.strip():
                while raw and not raw.endswith(b"\n"):  # the rest of a long comment
                    raw = fh.readline(1 << 16)
                continue
            parts = raw.split()
            try:
                sizes = [int(p) for p in parts]
            except ValueError:
                sizes = []
            if len(sizes) != 3 or min(sizes) < 0:
                raise ValueError(f"{path}, line {lineno}: expected 'num_docs num_terms num_nnz' "
                                 f"(three non-negative integers), got {raw.strip()[:80]!r}")
            break
        self.num_docs, self.num_terms, self.num_nnz = sizes
        if self.num_terms > _MAX_ID + 1:
            raise ValueError(f"{path}: {self.num_terms} terms declared, more than the {_MAX_ID + 1} supported")
        self.lines = lineno  # number of lines before the first entry
        self.body_offset = fh.tell()


class _Blocks:
    """Parse the entries of a Matrix Market body, block after block, with exact errors."""

    def __init__(self, path: str, header: _Header, block_bytes: int):
        self.path, self.header = path, header
        cap = block_bytes // 6 + 2
        self.block_bytes = block_bytes
        self.docs = np.empty(cap, dtype=np.int64)
        self.terms = np.empty(cap, dtype=np.int32)
        self.vals = np.empty(cap, dtype=np.float64)
        self.slow = np.empty((cap, 3), dtype=np.int64)

    def read(self, fh: IO[bytes], line: int,
             offset: int = 0) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(body offset, first line, docs, terms, vals)`` per block; arrays are reused.

        ``line`` is the 1-based number of the first line read, for error messages;
        ``offset`` the position of ``fh`` in the body. Copy the arrays to keep them.
        """
        prev_doc = -1
        rest = b""
        while True:
            data = fh.read(self.block_bytes - len(rest))
            if not data:
                if rest:
                    yield (offset, line) + self._parse(rest, line, prev_doc)[:3]
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < self.block_bytes:
                rest = data
                continue
            if cut == 0:
                raise ValueError(f"{self.path}, line {line}: line longer than {self.block_bytes} bytes")
            block, rest = data[:cut], data[cut:]
            docs, terms, vals, n_lines, prev_doc = self._parse(block, line, prev_doc)
            yield offset, line, docs, terms, vals
            line += n_lines
            offset += cut

    def _parse(self, block: bytes, line: int, prev_doc: int) -> tuple[Any, ...]:
        buf = np.frombuffer(block, dtype=np.uint8)
        h = self.header
        n, n_lines, status, bad_start, n_slow, last = kern.parse_entries(
            buf, h.num_docs, h.num_terms, prev_doc, self.docs, self.terms, self.vals, self.slow)
        if status != kern.OK:
            self._fail(block, line + n_lines, bad_start, status)
        for k in range(n_slow):
            entry, lo, hi = (int(x) for x in self.slow[k])
            try:
                self.vals[entry] = float(block[lo:hi])
            except ValueError:
                bad_line = line + block.count(b"\n", 0, lo)
                raise ValueError(f"{self.path}, line {bad_line}: value {block[lo:hi][:40]!r} is not a number") from None
        return self.docs[:n], self.terms[:n], self.vals[:n], n_lines, int(last)

    def _fail(self, block: bytes, line: int, start: int, status: int) -> None:
        end = block.find(b"\n", start)
        text = block[start:end if end >= 0 else len(block)].strip()
        where = f"{self.path}, line {line}"
        h = self.header
        fields = text.split()
        if status == kern.ERR_DOC:
            raise ValueError(f"{where}: document index {fields[0].decode()} is outside the declared range "
                             f"1..{h.num_docs}")
        if status == kern.ERR_TERM:
            raise ValueError(f"{where}: term index {fields[1].decode()} is outside the declared range "
                             f"1..{h.num_terms}")
        if status == kern.ERR_ORDER:
            raise ValueError(f"{where}: document {fields[0].decode()} comes after a later document; "
                             "entries must be sorted by document")
        if len(fields) != 3:
            raise ValueError(f"{where}: expected 3 fields 'doc term value', found {len(fields)}: {text[:80]!r}")
        raise ValueError(f"{where}: not numeric (1-based integer indices and a number expected): {text[:80]!r}")


class MmCorpus:
    """A corpus in a Matrix Market file, streamed as bag-of-words documents or CSR chunks.

    Parameters
    ----------
    fname : str or path-like
        A ``.mm`` file, plain or compressed (``.gz``, ``.bz2``), such as gensim's
        ``MmCorpus.serialize`` or :meth:`MmCorpus.serialize` write.

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
    """

    def __init__(self, fname: str | os.PathLike):
        if not isinstance(fname, (str, os.PathLike)):
            raise TypeError(f"MmCorpus needs a file name, got {type(fname).__name__}")
        self.fname = os.fspath(fname)
        with _open(self.fname) as fh:
            self._header = _Header(self.fname, fh)
        self.num_docs = self._header.num_docs
        self.num_terms = self._header.num_terms
        self.num_nnz = self._header.num_nnz
        self._index: tuple[list[int], list[int], list[int]] | None = None
        logger.info("accepted corpus with %i documents, %i features, %i non-zero entries",
                    self.num_docs, self.num_terms, self.num_nnz)

    def __len__(self) -> int:
        return self.num_docs

    def __str__(self) -> str:
        return f"MmCorpus({self.num_docs} documents, {self.num_terms} features, {self.num_nnz} non-zero entries)"

    __repr__ = __str__

    # ------------------------------------------------------------------ reading

    def _entries(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """All entries, block by block (copies), checking the declared number of entries at the end."""
        blocks = _Blocks(self.fname, self._header, _BLOCK_BYTES)
        seen = 0
        with _open(self.fname) as fh:
            fh.seek(self._header.body_offset)
            for _, _, docs, terms, vals in blocks.read(fh, self._header.lines + 1):
                seen += len(docs)
                if seen > self.num_nnz:
                    raise ValueError(f"{self.fname}: more entries than the {self.num_nnz} declared in the header")
                yield docs.copy(), terms.copy(), vals.copy()
        if seen != self.num_nnz:
            raise ValueError(f"{self.fname}: truncated or corrupt, the header declares {self.num_nnz} entries "
                             f"but the file holds {seen}")

    def _chunks(self, chunksize: int, start: int) -> Iterator[CsrChunk]:
        """CSR chunks of ``chunksize`` documents (unvalidated counts)."""
        first = 0  # first document of the next chunk
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for docs, terms, vals in self._entries():
            if len(docs) == 0:
                continue
            pending.append((docs, terms, vals))
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
        yield from _emit(d, t, v, first, chunksize, remaining, self.num_docs, start)

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
        for chunk in self._chunks(4096, 0):
            yield from _bow_docs(chunk)

    def _build_index(self) -> tuple[list[int], list[int], list[int]]:
        """Body offset, first line and first document of every small block, for random access."""
        offsets, lines, firsts = [], [], []
        blocks = _Blocks(self.fname, self._header, _INDEX_BLOCK_BYTES)
        with _open(self.fname) as fh:
            fh.seek(self._header.body_offset)
            for offset, line, docs, _, _ in blocks.read(fh, self._header.lines + 1):
                if len(docs):
                    offsets.append(offset)
                    lines.append(line)
                    firsts.append(int(docs[0]))
        return offsets, lines, firsts

    def __getitem__(self, docno: int) -> list[tuple[int, float]]:
        """Document ``docno`` as bag-of-words (reads a small part of the file; slow for compressed files)."""
        n = document_number(docno, self.num_docs, "MmCorpus")
        if self._index is None:
            self._index = self._build_index()
        offsets, lines, firsts = self._index
        b = max(bisect.bisect_left(firsts, n) - 1, 0)
        if not offsets:
            return []
        blocks = _Blocks(self.fname, self._header, _INDEX_BLOCK_BYTES)
        ids: list[int] = []
        vals: list[float] = []
        with _open(self.fname) as fh:
            fh.seek(self._header.body_offset + offsets[b])
            for _, _, docs, terms, values in blocks.read(fh, lines[b], offset=offsets[b]):
                lo, hi = np.searchsorted(docs, [n, n + 1])
                ids.extend(terms[lo:hi].tolist())
                vals.extend(values[lo:hi].tolist())
                if len(docs) and docs[-1] > n:
                    break
        return list(zip(ids, vals))

    # ------------------------------------------------------------------ writing

    @staticmethod
    def serialize(fname: str | os.PathLike, corpus: Any, id2word: Any = None,
                  progress_cnt: int | None = None, metadata: bool = False) -> None:
        """Write ``corpus`` to ``fname`` in Matrix Market format (streamed).

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
        progress_cnt : int, optional
            Log progress every this many documents.
        metadata : bool, optional
            Must be False: gensim stores document metadata with pickle, which
            distlda does not use.

        Notes
        -----
        No ``.index`` file is written (gensim's is a pickle); random access
        builds its index in memory on first use.
        """
        if metadata:
            raise NotImplementedError("metadata=True is not supported: gensim stores metadata with pickle")
        write_corpus(fname, corpus, num_terms=len(id2word) if id2word is not None else None,
                     progress_cnt=progress_cnt)

    save_corpus = serialize


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
        np.cumsum(np.bincount(d[lo:hi] - bounds[j], minlength=n_docs), out=indptr[1:])
        yield CsrChunk(indptr, t[lo:hi], v[lo:hi], start + int(bounds[j]))
    return int(pos[count])


def _bow_docs(chunk: CsrChunk) -> Iterator[list[tuple[int, float]]]:
    """The documents of a chunk as lists of ``(id, value)`` with Python numbers."""
    ids = chunk.ids.tolist()
    vals = chunk.counts.astype(np.float64).tolist()
    bounds = chunk.indptr.tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        yield list(zip(ids[lo:hi], vals[lo:hi]))


def write_corpus(fname: str | os.PathLike, corpus: Any, num_terms: int | None = None,
                 progress_cnt: int | None = None) -> None:
    """Write ``corpus`` to ``fname`` in Matrix Market format, streamed and formatted per chunk.

    The output is what gensim's ``MmCorpus.serialize`` writes: entries of a document
    sorted by term id, entries with ``|value| <= 1e-12`` left out, integral values
    written as integers, other values as the shortest text that reads back exactly.
    The file is written under a temporary name and renamed when complete.

    Parameters
    ----------
    fname : str or path-like
        Output file; ``.gz`` and ``.bz2`` names are compressed.
    corpus : iterable of list of (int, number)
        Anything :func:`distlda.corpora.csr.iter_chunks` accepts.
    num_terms : int, optional
        Number of terms for the header; term ids must be below it. Default: the
        corpus's ``num_terms`` attribute if it has one, else the largest id plus one.
    progress_cnt : int, optional
        Log progress every this many documents.

    Raises
    ------
    ValueError
        When a document has an invalid id or count, or an id ``>= num_terms``.
    """
    path = os.fspath(fname)
    if num_terms is None:
        declared = getattr(corpus, "num_terms", None)
        num_terms = int(declared) if isinstance(declared, (int, np.integer)) else None
    elif not is_integer(num_terms) or num_terms < 0:
        raise ValueError(f"num_terms must be a non-negative integer, got {num_terms!r}")

    def write_body(fh: IO[bytes]) -> None:
        fh.write(HEADER_LINE + b" " * 50 + b"\n")
        n_docs = n_nnz = 0
        max_id = -1
        for chunk in iter_chunks(corpus, _WRITE_CHUNK_DOCS):
            if num_terms is not None:
                validate_chunk(chunk, num_terms)
            data, nnz, chunk_max = _format_chunk(chunk, n_docs)
            fh.write(data)
            n_docs += chunk.n_docs
            n_nnz += nnz
            max_id = max(max_id, chunk_max)
            if progress_cnt and (n_docs - chunk.n_docs) // progress_cnt != n_docs // progress_cnt:
                logger.info("PROGRESS: saved %i documents to %s", n_docs, path)
        stats = f"{n_docs} {num_terms or max_id + 1} {n_nnz}".encode()
        if len(stats) > 50:
            raise ValueError(f"matrix too large for the header: {stats.decode()}")
        fh.seek(len(HEADER_LINE))
        fh.write(stats)
        fh.seek(0, os.SEEK_END)
        logger.info("saved %i documents, %s terms, %i non-zero entries to %s",
                    n_docs, num_terms or max_id + 1, n_nnz, path)

    if path.endswith((".gz", ".bz2")):
        folder = os.path.dirname(os.path.abspath(path))
        with tempfile.TemporaryFile(dir=folder) as tmp:
            write_body(tmp)  # type: ignore[arg-type]
            tmp.seek(0)

            def compress(fh: IO[bytes]) -> None:
                packed = gzip.GzipFile(fileobj=fh, mode="wb") if path.endswith(".gz") else bz2.BZ2File(fh, "wb")
                with packed:
                    shutil.copyfileobj(tmp, packed, 1 << 20)  # type: ignore[arg-type]

            atomic_write(path, compress)
    else:
        atomic_write(path, write_body)


def _format_chunk(chunk: CsrChunk, first_doc: int) -> tuple[memoryview, int, int]:
    """The text lines of a chunk, the number of entries written and the largest term id."""
    ids, counts = chunk.ids, chunk.counts
    rows = np.repeat(np.arange(chunk.n_docs, dtype=np.int64), np.diff(chunk.indptr))
    keep = np.abs(counts) > 1e-12
    if not keep.all():
        rows, ids, counts = rows[keep], ids[keep], counts[keep]
    if len(ids) > 1:
        same_doc = rows[1:] == rows[:-1]
        if np.any(same_doc & (ids[1:] <= ids[:-1])):
            order = np.lexsort((counts, ids, rows))
            rows, ids, counts = rows[order], ids[order], counts[order]
    if len(ids) == 0:
        return memoryview(b""), 0, -1
    values = counts.astype(np.float64)
    is_int = (values == np.floor(values)) & (np.abs(values) < 2.0 ** 53)
    others = counts[~is_int]
    if len(others):
        texts = map(str, others) if counts.dtype == np.float32 else map(repr, others.tolist())
        encoded = [s.encode("ascii") for s in texts]
        text = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
    else:
        text, offsets = np.zeros(0, np.uint8), np.zeros(1, np.int64)
    docs1 = rows + (first_doc + 1)
    terms1 = ids.astype(np.int64) + 1
    width = len(str(int(docs1[-1]))) + len(str(int(terms1.max()))) + 24
    out = np.empty(len(ids) * width + len(text), dtype=np.uint8)
    used = kern.format_entries(docs1, terms1, values, is_int, text, offsets, out)
    return memoryview(out[:used]), len(ids), int(ids.max())
