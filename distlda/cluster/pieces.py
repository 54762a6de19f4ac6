"""Arrays larger than one message travel in pieces of rows.

A model's topics × terms arrays (the statistics of a base, the model a client
takes from a worker, a learned topic-word prior) can exceed any message size a
daemon accepts: K = 1,000 topics over V = 500,000 terms in float32 is 2 GB. An
array of more than :func:`piece_bytes` bytes is therefore announced by a
*header* — ``{"dtype", "shape", "rows", "pieces"}`` in place of the encoded
array — and its pieces (rows ``[i·rows, (i+1)·rows)``, each an encoded array of
its own) are fetched one call each by the receiver. Every message then stays
within a few tens of MB, and no process ever holds the whole array as a message:
the sender encodes one piece at a time, the receiver copies each piece into the
array it allocated once from the header.

Smaller arrays stay inline (``encode_array``), so a message of a small model is
as before.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from distlda.cluster.errors import WireError
from distlda.cluster.wire import decode_array, encode_array

__all__ = ["piece_bytes", "encode_large", "encode_piece", "decode_large", "is_pieced", "is_piece", "large_bytes",
           "PIECE_BYTES"]

PIECE_BYTES = 8 << 20
"""Default size of the largest array sent inline, and of each piece of a larger one (8 MiB: small pieces let the
workers pass a base on while it still arrives; on 8 scaled-down hosts a 120 MB base in 64 MiB pieces made a
48,000-document run take 44–50 s, in 16 MiB pieces 35–38 s, in 8 MiB 31 s, in 4 MiB 29–35 s — docs/scaling.md)."""

_HEADER_KEYS = {"dtype", "shape", "rows", "pieces"}


def piece_bytes() -> int:
    """Bytes per piece: :data:`PIECE_BYTES`, or ``DISTLDA_PIECE_BYTES`` from the environment (tests set it small
    to send small models in many pieces)."""
    value = os.environ.get("DISTLDA_PIECE_BYTES")
    if value is None:
        return PIECE_BYTES
    try:
        size = int(value)
    except ValueError:
        raise ValueError(f"DISTLDA_PIECE_BYTES must be a number of bytes, got {value!r}") from None
    if size < 1:
        raise ValueError(f"DISTLDA_PIECE_BYTES must be at least 1, got {size}")
    return size


def _rows_per_piece(arr: np.ndarray, limit: int) -> int:
    row = max(1, int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize)
    return max(1, limit // row)


def encode_large(arr: np.ndarray, limit: int | None = None) -> dict[str, Any]:
    """``arr`` encoded inline when it has at most ``limit`` (default :func:`piece_bytes`) bytes, else the header
    of its pieces (fetch each with :func:`encode_piece`)."""
    limit = piece_bytes() if limit is None else limit
    if arr.nbytes <= limit or arr.ndim == 0 or arr.shape[0] <= 1:
        return encode_array(arr)
    rows = _rows_per_piece(arr, limit)
    return {"dtype": np.dtype(arr.dtype).str, "shape": list(arr.shape), "rows": rows,
            "pieces": -(-arr.shape[0] // rows)}


def is_pieced(value: Any) -> bool:
    """Whether ``value`` is the header of an array sent in pieces (not the array itself)."""
    return isinstance(value, dict) and set(value) == _HEADER_KEYS


def encode_piece(arr: np.ndarray, index: Any, rows: Any) -> dict[str, Any]:
    """Piece ``index`` of ``arr`` cut in pieces of ``rows`` rows, encoded; WireError for a piece that does not
    exist or is larger than twice the piece size (a request must not make the sender build a huge message)."""
    if not _is_count(index) or not _is_count(rows) or rows < 1 or index * rows >= arr.shape[0]:
        raise WireError(f"no piece {index!r} of {rows!r} rows in an array of {arr.shape[0]} rows")
    if rows > _most_rows(arr):
        raise WireError(f"pieces of {rows} rows are larger than this process sends in one message")
    return encode_array(arr[index * rows:(index + 1) * rows])


def is_piece(arr: np.ndarray, lo: int, hi: int) -> bool:
    """Whether rows ``lo:hi`` of ``arr`` may be sent as a piece: rows it has, no more than twice a piece as this
    process cuts them (a request must not make the sender copy a huge array)."""
    return 0 <= lo < hi <= arr.shape[0] and hi - lo <= _most_rows(arr)


def _most_rows(arr: np.ndarray) -> int:
    """The most rows of ``arr`` this process sends in one message: twice a piece."""
    return 2 * _rows_per_piece(arr, piece_bytes())


def decode_large(value: Any, fetch: Callable[[int], Any] | None, name: str,
                 progress: Callable[[np.ndarray, int], None] | None = None) -> np.ndarray:
    """The array ``value`` stands for: decoded inline, or assembled from its pieces, ``fetch(i)`` giving the
    encoded piece ``i`` (or the piece as an array), and ``progress(array, i)`` told as each is in place. WireError
    when a header or a piece is malformed or does not fit the others."""
    if not is_pieced(value):
        return decode_array(value, name)
    header = decode_array({"dtype": value["dtype"], "shape": [0], "data": b""}, f"{name} header")
    shape, rows, pieces = value["shape"], value["rows"], value["pieces"]
    if not isinstance(shape, (list, tuple)) or not shape or not all(_is_count(s) for s in shape) or \
            not _is_count(rows) or rows < 1 or not _is_count(pieces) or pieces != -(-shape[0] // rows):
        raise WireError(f"{name}: malformed piece header (shape {shape!r}, rows {rows!r}, pieces {pieces!r})")
    if fetch is None:
        raise WireError(f"{name}: sent in {pieces} pieces, but there is no one to fetch them from")
    out = np.empty(tuple(shape), dtype=header.dtype)
    for index in range(pieces):
        part = fetch(index)
        if not isinstance(part, np.ndarray):  # (an array already: a piece from the bulk channel)
            part = decode_array(part, f"{name} piece {index}")
        lo, hi = index * rows, min(shape[0], (index + 1) * rows)
        if part.dtype != out.dtype or part.shape != out[lo:hi].shape:
            raise WireError(f"{name} piece {index}: {part.dtype} {list(part.shape)}, expected {out.dtype} "
                            f"{list(out[lo:hi].shape)}")
        out[lo:hi] = part
        if progress is not None:
            progress(out, index)
    return out


def large_bytes(value: Any) -> int:
    """Payload bytes of an array sent inline or in pieces (for the transfer counters)."""
    if is_pieced(value):
        return int(np.prod(value["shape"], dtype=np.int64)) * np.dtype(value["dtype"]).itemsize
    return len(value["data"])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
