"""Parsing Matrix Market text: the header, then the entries block by block with exact errors.

The entries are parsed by the numba kernel of :mod:`distlda.corpora.mmkernels`; this
module reads the blocks, converts the few values the kernel leaves to Python and turns
the kernel's status codes into messages that name the file and the line.
"""

from __future__ import annotations

from typing import IO, Any, Iterator

import numpy as np

from distlda.corpora import mmkernels as kern

__all__ = ["Header", "Blocks"]

_ACCEPTED_FIELDS = ("real", "integer")
_MAX_ID = np.iinfo(np.int32).max


class Header:
    """Sizes declared by a Matrix Market file, and where its entries start."""

    def __init__(self, path: str, fh: IO[bytes]):
        first = fh.readline(4096)
        words = first.decode("latin-1").lower().split()
        if not first:  # gensim reads an empty file as an empty corpus
            self.num_docs = self.num_terms = self.num_nnz = 0
            self.lines, self.body_offset = 0, 0
            return
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


class Blocks:
    """Parse the entries of a Matrix Market body, block after block, with exact errors."""

    def __init__(self, path: str, header: Header, block_bytes: int):
        self.path, self.header = path, header
        cap = block_bytes // 6 + 2
        self.block_bytes = block_bytes
        self.docs = np.empty(cap, dtype=np.int64)
        self.terms = np.empty(cap, dtype=np.int32)
        self.vals = np.empty(cap, dtype=np.float64)
        self.slow = np.empty((cap, 3), dtype=np.int64)

    def read(self, fh: IO[bytes], line: int,
             offset: int = 0) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, bytes]]:
        """Yield ``(body offset, first line, docs, terms, vals, text)`` per block; arrays are reused.

        ``line`` is the 1-based number of the first line read, for error messages;
        ``offset`` the position of ``fh`` in the body. Copy the arrays to keep them.
        """
        prev_doc = -1
        rest = b""
        while True:
            data = fh.read(self.block_bytes - len(rest))
            if not data:
                if rest:
                    yield (offset, line) + self._parse(rest, line, prev_doc)[:3] + (rest,)
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
            yield offset, line, docs, terms, vals, block
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
