"""distlda's binary corpus: sharded, memory-mapped CSR arrays on disk.

A binary corpus is a directory::

    corpus.json          format, version, num_docs, num_terms, num_nnz, num_words, shards
    shard-00000.dlc      distlda containers (kind 'distlda.BinaryCorpusShard') holding
    shard-00001.dlc      indptr (int64), ids (int32) and counts (float32)
    ...

Shards hold consecutive documents. Reading memory-maps the shards and slices
them, so streaming chunks costs no Python work per document, and any range of
documents (for example the share of one worker) can be read without touching the
rest. Writing streams: at most one shard is held in memory.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from distlda.corpora.csr import CsrChunk, chunk_from_arrays, document_number, iter_chunks, validate_chunk
from distlda.io.container import (
    ContainerError,
    atomic_write_bytes,
    read_container,
    write_container,
)
from distlda.io.mmap import release_pages
from distlda.validation import is_integer

__all__ = ["BinaryCorpus", "BinaryCorpusWriter", "ShardInfo"]

logger = logging.getLogger(__name__)

FORMAT = "distlda.BinaryCorpus"
SHARD_KIND = "distlda.BinaryCorpusShard"
VERSION = 1
META_NAME = "corpus.json"
DEFAULT_SHARD_DOCS = 100_000


@dataclass(frozen=True)
class ShardInfo:
    """Where a shard's documents sit in the corpus.

    Parameters
    ----------
    file : str
        File name of the shard, relative to the corpus directory.
    first_doc : int
        Number of its first document in the corpus.
    num_docs, num_nnz : int
        Documents and stored entries in the shard.
    """

    file: str
    first_doc: int
    num_docs: int
    num_nnz: int


class BinaryCorpus:
    """Read a binary corpus written by :class:`BinaryCorpusWriter` or :meth:`serialize`.

    Parameters
    ----------
    path : str or path-like
        The corpus directory.
    mmap : bool, optional
        Memory-map the shards (default) instead of reading each into memory on first use.
    verify : bool or 'on first use', optional
        Check every shard's checksums now (default), so a damaged file is reported when the corpus is
        opened, not after most of a pass; about 3 GB/s on one core. ``'on first use'`` checks each shard
        when it is first read instead (a cluster's workers: the client checked the corpus when it opened
        it, and a worker answers at once). A shard read into memory is checked when it is read whatever
        this says.

    Attributes
    ----------
    num_docs, num_terms, num_nnz : int
    num_words : float
        Total of all counts.

    Raises
    ------
    ValueError
        When ``path`` is not a binary corpus, or its description is inconsistent.
    """

    def __init__(self, path: str | os.PathLike, mmap: bool = True, verify: bool | str = True):
        if verify not in (True, False, "on first use"):
            raise ValueError(f"verify must be True, False or 'on first use', got {verify!r}")
        self.path = Path(path)
        self._verify_on_use = verify == "on first use"
        self._mmap = "r" if mmap else None
        meta, shards = _read_meta(self.path)
        self.num_docs = int(meta["num_docs"])
        self.num_terms = int(meta["num_terms"])
        self.num_nnz = int(meta["num_nnz"])
        self.num_words = meta["num_words"]
        self._shards = shards
        self._bounds = np.array([s.first_doc for s in self._shards] + [self.num_docs], dtype=np.int64)
        self._arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(self._shards)
        if verify is True:
            for k in range(len(self._shards)):
                for array in self._shard(k, verify=True):
                    if self._mmap == "r":
                        release_pages(array)  # checked: its pages need not stay in this process's memory

    @property
    def shards(self) -> list[ShardInfo]:
        """The shards, in document order."""
        return list(self._shards)

    def __len__(self) -> int:
        return self.num_docs

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this corpus for a cluster's workers, which must read the same documents: its sizes and
        its shard layout (plain values, for any wire)."""
        return {"num_docs": int(self.num_docs), "num_terms": int(self.num_terms), "num_nnz": int(self.num_nnz),
                "shards": [[s.file, int(s.first_doc), int(s.num_docs)] for s in self.shards]}

    def __str__(self) -> str:
        return (f"BinaryCorpus({self.path}: {self.num_docs} documents, {self.num_terms} terms, "
                f"{self.num_nnz} non-zero entries, {len(self._shards)} shards)")

    __repr__ = __str__

    def _shard(self, k: int, verify: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (indptr, ids, counts) arrays of shard ``k``, opened and checked on first use (its checksums too,
        with ``verify``)."""
        arrays = self._arrays[k]
        if arrays is not None:
            return arrays
        info = self._shards[k]
        file = self.path / info.file
        try:
            _, raw = read_container(file, kind=SHARD_KIND, mmap=self._mmap,
                                    verify=self._verify_on_use if verify is None else verify)
        except FileNotFoundError:
            raise ValueError(f"{self.path}: shard file {info.file} is missing") from None
        except ContainerError as exc:
            raise ValueError(f"{self.path}: bad shard: {exc}") from None
        try:
            indptr, ids, counts = (np.asarray(raw[name]).view(np.ndarray) for name in ("indptr", "ids", "counts"))
        except KeyError as exc:
            raise ValueError(f"{file}: shard lacks the {exc} array") from None
        if (indptr.dtype != np.int64 or ids.dtype != np.int32 or counts.dtype != np.float32
                or indptr.shape != (info.num_docs + 1,) or ids.shape != (info.num_nnz,)
                or counts.shape != (info.num_nnz,) or indptr[0] != 0 or indptr[-1] != info.num_nnz
                or np.any(np.diff(indptr) < 0)):
            raise ValueError(f"{file}: shard arrays do not match corpus.json ({info.num_docs} documents, "
                             f"{info.num_nnz} entries) or are corrupt")
        arrays = (indptr, ids, counts)
        self._arrays[k] = arrays
        return arrays

    def _pieces(self, first: int, stop: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(indptr from 0, ids, counts) of documents ``first:stop``, one piece per shard touched."""
        k = int(np.searchsorted(self._bounds, first, side="right")) - 1
        while first < stop:
            while self._bounds[k + 1] <= first:  # skip shards with no documents
                k += 1
            indptr, ids, counts = self._shard(k)
            base = int(self._bounds[k])
            lo, hi = first - base, min(stop, int(self._bounds[k + 1])) - base
            a, b = int(indptr[lo]), int(indptr[hi])
            yield indptr[lo:hi + 1] - a, ids[a:b], counts[a:b]
            first = base + hi
            k += 1

    def _range(self, first: int, stop: int, start: int) -> CsrChunk:
        pieces = list(self._pieces(first, stop))
        if len(pieces) == 1:
            indptr, ids, counts = pieces[0]
        elif not pieces:
            indptr, ids, counts = np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        else:
            offsets = np.cumsum([0] + [int(p[0][-1]) for p in pieces[:-1]])
            indptr = np.concatenate([pieces[0][0][:1]] + [p[0][1:] + off for p, off in zip(pieces, offsets)])
            ids = np.concatenate([p[1] for p in pieces])
            counts = np.concatenate([p[2] for p in pieces])
        chunk = CsrChunk(indptr, ids, counts, start)
        try:
            validate_chunk(chunk, self.num_terms)
        except ValueError as exc:
            raise ValueError(f"{self.path}: corrupt corpus: {exc}") from None
        return chunk

    def read_range(self, first_doc: int, last_doc: int) -> CsrChunk:
        """Documents ``first_doc`` up to, but not including, ``last_doc``, as one chunk.

        The range may span shards (then the arrays are copied; within one shard they
        are views of the memory map). ``chunk.start`` is ``first_doc``.

        Raises
        ------
        ValueError
            When the range is not within ``0 <= first_doc <= last_doc <= num_docs``.
        """
        if not (_is_int(first_doc) and _is_int(last_doc) and 0 <= first_doc <= last_doc <= self.num_docs):
            raise ValueError(f"document range [{first_doc}, {last_doc}) is not within [0, {self.num_docs}] "
                             "or is reversed")
        return self._range(int(first_doc), int(last_doc), int(first_doc))

    def iter_chunks(self, chunksize: int, start: int = 0) -> Iterator[CsrChunk]:
        """Stream the corpus as chunks of ``chunksize`` documents (counts stay float32).

        When the corpus is memory-mapped, the pages of a chunk leave this process's
        resident memory once the next chunk is asked for (see :meth:`release`), so a
        pass over a large corpus does not grow the process by the corpus's size.

        Parameters
        ----------
        chunksize : int
        start : int, optional
            Added to document numbers: a chunk's ``start`` is ``start`` plus the
            number of its first document in the corpus.
        """
        if not _is_int(chunksize) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
        for lo in range(0, self.num_docs, int(chunksize)):
            stop = min(lo + int(chunksize), self.num_docs)
            yield self._range(lo, stop, int(start) + lo)
            self.release(lo, stop)

    def release(self, first_doc: int, last_doc: int) -> None:
        """Let the pages of documents ``first_doc``..``last_doc - 1`` leave this process's resident memory.

        Only a memory-mapped corpus holds such pages; they stay in the operating
        system's file cache, so reading the documents again is cheap and sees the
        same data (chunks already read keep working). Does nothing when the corpus
        was read into memory (``mmap=False``).
        """
        if self._mmap != "r" or not (_is_int(first_doc) and _is_int(last_doc)):
            return
        first, stop = max(0, int(first_doc)), min(self.num_docs, int(last_doc))
        if first >= stop:
            return
        for indptr, ids, counts in self._pieces(first, stop):
            release_pages(ids)
            release_pages(counts)

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        """Yield each document as a bag-of-words list ``[(term_id, count), ...]``."""
        for chunk in self.iter_chunks(4096):
            ids = chunk.ids.tolist()
            counts = chunk.counts.astype(np.float64).tolist()
            bounds = chunk.indptr.tolist()
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                yield list(zip(ids[lo:hi], counts[lo:hi]))

    def __getitem__(self, docno: int) -> list[tuple[int, float]]:
        """Document ``docno`` (negative numbers count from the end) as bag-of-words."""
        n = document_number(docno, self.num_docs, "BinaryCorpus")
        chunk = self._range(n, n + 1, n)
        return list(zip(chunk.ids.tolist(), chunk.counts.astype(np.float64).tolist()))

    @classmethod
    def serialize(cls, path: str | os.PathLike, corpus: Any, num_terms: int | None = None,
                  shard_docs: int = DEFAULT_SHARD_DOCS) -> None:
        """Write ``corpus`` as a binary corpus in directory ``path`` (streamed).

        Parameters
        ----------
        path : str or path-like
            Directory to create (or a binary corpus to replace).
        corpus : iterable of list of (int, number)
            Anything :func:`distlda.corpora.csr.iter_chunks` accepts.
        num_terms : int, optional
            Vocabulary size; default the corpus's ``num_terms`` attribute if it
            has one, else the largest id plus one.
        shard_docs : int, optional
            Documents per shard.
        """
        if isinstance(corpus, BinaryCorpus) and corpus.path.resolve() == Path(path).resolve():
            raise ValueError(f"refusing to write {path} over the corpus being read from it")
        if num_terms is None:
            declared = getattr(corpus, "num_terms", None)
            num_terms = int(declared) if _is_int(declared) else None
        with BinaryCorpusWriter(path, num_terms=num_terms, shard_docs=shard_docs) as writer:
            writer.add_documents(corpus)


class BinaryCorpusWriter:
    """Write a binary corpus chunk by chunk, holding at most one shard in memory.

    Use it as a context manager; the corpus becomes readable when it is closed
    (``corpus.json`` is written last). On an error inside the ``with`` block, the
    shards written so far are removed.

    Parameters
    ----------
    path : str or path-like
        Directory to create; an existing binary corpus there is replaced, any
        other non-empty directory is refused.
    num_terms : int, optional
        Vocabulary size; ids must be below it. Default: the largest id plus one.
    shard_docs : int, optional
        Documents per shard (the last shard may be smaller).

    Examples
    --------
    >>> with BinaryCorpusWriter(path) as writer:            # doctest: +SKIP
    ...     for chunk in chunks:
    ...         writer.add_chunk(chunk)
    """

    def __init__(self, path: str | os.PathLike, num_terms: int | None = None,
                 shard_docs: int = DEFAULT_SHARD_DOCS):
        if num_terms is not None and (not _is_int(num_terms) or num_terms < 0):
            raise ValueError(f"num_terms must be a non-negative integer, got {num_terms!r}")
        if not _is_int(shard_docs) or shard_docs < 1:
            raise ValueError(f"shard_docs must be a positive integer, got {shard_docs!r}")
        self.path = Path(path)
        self.num_terms = None if num_terms is None else int(num_terms)
        self.shard_docs = int(shard_docs)
        self._stale = _prepare_directory(self.path)
        self._shards: list[ShardInfo] = []
        self._pending: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()  # (lengths, ids, counts)
        self._pending_docs = 0
        self.num_docs = 0  # documents added so far
        self._num_nnz = 0
        self._num_words = 0.0
        self._max_id = -1
        self._closed = False

    def __enter__(self) -> "BinaryCorpusWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_chunk(self, chunk: CsrChunk) -> None:
        """Append the documents of ``chunk`` (its ``start`` is ignored: documents follow on).

        Raises
        ------
        ValueError
            On inconsistent arrays, a negative or out-of-vocabulary id, or a
            negative, NaN, infinite or float32-overflowing count; the message gives
            the document number in the corpus being written.
        """
        if self._closed:
            raise ValueError(f"the writer of {self.path} is closed")
        if not isinstance(chunk, CsrChunk):
            raise TypeError(f"add_chunk expects a CsrChunk, got {type(chunk).__name__} (use add_documents)")
        chunk = chunk_from_arrays(chunk.indptr, chunk.ids, chunk.counts, start=self.num_docs)  # validates
        if self.num_terms is not None:
            validate_chunk(chunk, self.num_terms)
        with np.errstate(over="ignore"):
            counts = chunk.counts.astype(np.float32)
        if chunk.counts.dtype != np.float32 and not np.all(np.isfinite(counts)):
            bad = int(np.flatnonzero(~np.isfinite(counts))[0])
            doc = self.num_docs + int(np.searchsorted(chunk.indptr, bad, side="right")) - 1
            raise ValueError(f"document {doc}: count {float(chunk.counts[bad])!r} is too large for float32")
        lengths = np.diff(chunk.indptr)
        self._pending.append((lengths, chunk.ids.copy(), counts))
        self._pending_docs += chunk.n_docs
        self.num_docs += chunk.n_docs
        self._num_nnz += chunk.nnz
        self._num_words += float(counts.sum(dtype=np.float64))
        self._max_id = max(self._max_id, chunk.max_id())
        while self._pending_docs >= self.shard_docs:
            self._flush(self.shard_docs)

    def add_documents(self, documents: Any, chunksize: int = 4096) -> None:
        """Append bag-of-words documents (or anything :func:`~distlda.corpora.csr.iter_chunks` accepts)."""
        for chunk in iter_chunks(documents, chunksize, start=self.num_docs):
            self.add_chunk(chunk)

    def _flush(self, n_docs: int) -> None:
        """Write the first ``n_docs`` pending documents as the next shard."""
        taken = []
        need = n_docs
        while need > 0:
            lengths, ids, counts = self._pending[0]
            if len(lengths) <= need:
                taken.append(self._pending.popleft())
                need -= len(lengths)
            else:
                cut = int(lengths[:need].sum())
                taken.append((lengths[:need], ids[:cut], counts[:cut]))
                self._pending[0] = (lengths[need:], ids[cut:], counts[cut:])
                need = 0
        lengths, ids, counts = (np.concatenate(parts) for parts in zip(*taken))
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        nnz = int(indptr[-1])
        name = f"shard-{len(self._shards):05d}.dlc"
        first = self.num_docs - self._pending_docs
        info = ShardInfo(name, first, n_docs, nnz)
        meta = {"version": VERSION, "first_doc": first, "num_docs": n_docs, "num_nnz": nnz}
        write_container(self.path / name, SHARD_KIND, meta, {"indptr": indptr, "ids": ids, "counts": counts})
        self._shards.append(info)
        self._stale.discard(name)
        self._pending_docs -= n_docs
        logger.debug("wrote %s: documents %i..%i, %i entries", name, first, first + n_docs - 1, nnz)

    def close(self) -> None:
        """Write the last shard and ``corpus.json``; the corpus is then readable."""
        if self._closed:
            return
        if self._pending_docs:
            self._flush(self._pending_docs)
        num_terms = self.num_terms if self.num_terms is not None else self._max_id + 1
        words = self._num_words
        meta = {
            "format": FORMAT, "version": VERSION, "num_docs": self.num_docs, "num_terms": num_terms,
            "num_nnz": self._num_nnz, "num_words": int(words) if float(words).is_integer() else words,
            "shards": [asdict(s) for s in self._shards],
        }
        atomic_write_bytes(self.path / META_NAME, json.dumps(meta, indent=1).encode("utf-8"))
        for name in self._stale:  # shards of a corpus that was replaced
            (self.path / name).unlink(missing_ok=True)
        self._closed = True
        logger.info("saved binary corpus %s: %i documents, %i terms, %i entries in %i shards",
                    self.path, self.num_docs, num_terms, self._num_nnz, len(self._shards))

    def abort(self) -> None:
        """Stop writing and remove the shards written so far (no ``corpus.json`` is written)."""
        for name in {info.file for info in self._shards} | self._stale:
            (self.path / name).unlink(missing_ok=True)
        self._pending.clear()
        self._closed = True


def _is_int(value: Any) -> bool:
    return is_integer(value)


def _prepare_directory(path: Path) -> set[str]:
    """Create ``path`` or make an existing binary corpus there replaceable; return its shard names."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    if not path.exists():
        path.mkdir(parents=True)
        return set()
    entries = {p.name for p in path.iterdir()}
    if not entries:
        return set()
    if META_NAME not in entries:
        raise ValueError(f"{path} is a non-empty directory that is not a binary corpus; refusing to write there")
    (path / META_NAME).unlink()  # from here on the old corpus is invalid, never half-replaced
    return {name for name in entries if name.startswith("shard-") and name.endswith(".dlc")}


def _read_meta(path: Path) -> tuple[dict[str, Any], list[ShardInfo]]:
    """Read and check ``corpus.json``: its fields and its shards; ValueError naming the problem."""
    meta_file = path / META_NAME
    if not path.is_dir() or not meta_file.is_file():
        raise ValueError(f"{path} is not a distlda binary corpus (no {META_NAME} in a directory)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{meta_file} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_file} does not describe a distlda binary corpus")
    if meta.get("version") != VERSION:
        raise ValueError(f"{meta_file}: unsupported binary corpus version {meta.get('version')!r}")
    try:
        sizes = [int(meta[k]) for k in ("num_docs", "num_terms", "num_nnz")]
        float(meta["num_words"])
        shards = [ShardInfo(str(s["file"]), int(s["first_doc"]), int(s["num_docs"]), int(s["num_nnz"]))
                  for s in meta["shards"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{meta_file} is missing or has a malformed field: {exc}") from None
    expected = 0
    for s in shards:
        if os.path.basename(s.file) != s.file or s.file.startswith("."):
            raise ValueError(f"{meta_file}: shard file name {s.file!r} must be a plain file name")
        if s.first_doc != expected or s.num_docs < 0 or s.num_nnz < 0:
            raise ValueError(f"{meta_file}: shards do not cover consecutive documents (at {s.file})")
        expected += s.num_docs
    if min(sizes) < 0 or expected != sizes[0] or sum(s.num_nnz for s in shards) != sizes[2]:
        raise ValueError(f"{meta_file}: shard sizes do not add up to num_docs={sizes[0]}, num_nnz={sizes[2]}")
    return meta, shards
