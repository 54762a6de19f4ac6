"""Writing Matrix Market corpora as gensim does, and gensim's ``.index`` of document offsets.

Whole chunks are formatted at once by :func:`distlda.corpora.mmkernels.format_entries`,
so no Python code runs per entry. gensim's index file is a pickled list of byte
offsets; it is written here opcode by opcode (a list of integers needs four pickle
opcodes), so gensim can index files distlda wrote without distlda using ``pickle``.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import os
import shutil
import tempfile
from typing import IO, Any

import numpy as np

from distlda.corpora import mmkernels as kern
from distlda.corpora.csr import CsrChunk, iter_chunks, validate_chunk
from distlda.io.container import atomic_write, atomic_write_bytes
from distlda.validation import is_integer

__all__ = ["HEADER_LINE", "write_corpus", "write_gensim_index"]

logger = logging.getLogger(__name__)

HEADER_LINE = b"%%MatrixMarket matrix coordinate real general\n"
_WRITE_CHUNK_DOCS = 4096
_NEWLINE = 10


def write_corpus(fname: str | os.PathLike, corpus: Any, num_terms: int | None = None,
                 progress_cnt: int | None = None) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray of int64
        Byte offset of each document's first line in the uncompressed text, -1 for a
        document without entries (the last document excepted: its offset is the end
        of the file), as gensim's writer returns them for its ``.index``.

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

    offsets: list[np.ndarray] = []

    def write_body(fh: IO[bytes]) -> None:
        fh.write(HEADER_LINE + b" " * 50 + b"\n")
        n_docs = n_nnz = 0
        max_id = -1
        position = len(HEADER_LINE) + 51
        for chunk in iter_chunks(corpus, _WRITE_CHUNK_DOCS):
            if num_terms is not None:
                validate_chunk(chunk, num_terms)
            data, nnz, chunk_max, starts = _format_chunk(chunk, n_docs)
            offsets.append(np.where(starts >= 0, starts + position, -1))
            position += len(data)
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
        if offsets and offsets[-1][-1] < 0:
            offsets[-1][-1] = position  # gensim's writer: a last empty document points at the end
        logger.info("saved %i documents, %s terms, %i non-zero entries to %s",
                    n_docs, num_terms or max_id + 1, n_nnz, path)

    if path.endswith((".gz", ".bz2")):
        _write_compressed(path, write_body)
    else:
        atomic_write(path, write_body)
    return np.concatenate(offsets) if offsets else np.zeros(0, dtype=np.int64)


def _write_compressed(path: str, write_body: Any) -> None:
    """``write_body`` into a plain temporary file (it seeks back to the header), then compressed to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryFile(dir=folder) as tmp:
        write_body(tmp)
        tmp.seek(0)

        def compress(fh: IO[bytes]) -> None:
            packed = gzip.GzipFile(fileobj=fh, mode="wb") if path.endswith(".gz") else bz2.BZ2File(fh, "wb")
            with packed:
                shutil.copyfileobj(tmp, packed, 1 << 20)  # type: ignore[arg-type]

        atomic_write(path, compress)


def _format_chunk(chunk: CsrChunk, first_doc: int) -> tuple[memoryview, int, int, np.ndarray]:
    """The text lines of a chunk, the number of entries written, the largest term id and where each
    document's lines start in the text (-1 for a document with nothing written)."""
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
        return memoryview(b""), 0, -1, np.full(chunk.n_docs, -1, dtype=np.int64)
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
    line_starts = np.empty(len(ids), dtype=np.int64)
    line_starts[0] = 0
    line_starts[1:] = np.flatnonzero(out[:used] == _NEWLINE)[:-1] + 1
    first_entry = np.searchsorted(rows, np.arange(chunk.n_docs))
    has_lines = first_entry < len(rows)
    has_lines[has_lines] = rows[first_entry[has_lines]] == np.flatnonzero(has_lines)
    starts = np.where(has_lines, line_starts[np.minimum(first_entry, len(ids) - 1)], -1)
    return memoryview(out[:used]), len(ids), int(ids.max()), starts


def write_gensim_index(fname: str | os.PathLike, offsets: np.ndarray) -> None:
    """Write ``offsets`` as gensim's ``.index`` file: a pickled list of ints (protocol 2).

    The bytes are composed here: ``PROTO 2``, ``EMPTY_LIST``, ``MARK``, one
    ``BININT`` (4-byte) or ``LONG1`` (8-byte) opcode per offset, ``APPENDS``,
    ``STOP`` -- what ``pickle.dumps(list_of_ints)`` means, without the pickle module.
    """
    values = np.asarray(offsets, dtype=np.int64)
    wide = bool(len(values)) and (values.max() > np.iinfo(np.int32).max or values.min() < np.iinfo(np.int32).min)
    if wide:  # LONG1: opcode, byte count 8, little-endian two's complement
        items = np.zeros(len(values), dtype=[("op", "u1"), ("size", "u1"), ("value", "<i8")])
        items["op"], items["size"] = 0x8A, 8
    else:  # BININT: opcode "J", little-endian signed 4 bytes
        items = np.zeros(len(values), dtype=[("op", "u1"), ("value", "<i4")])
        items["op"] = ord("J")
    items["value"] = values
    body = b"\x80\x02](" + items.tobytes() + b"e." if len(values) else b"\x80\x02]."
    atomic_write_bytes(fname, body)
