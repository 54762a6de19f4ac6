"""Numpy arrays and CSR chunks as msgpack-safe values, for Pyro5's msgpack serializer.

An array travels as ``{"dtype": "<f4", "shape": [V, K], "data": b"..."}``: its
raw bytes (msgpack's bin type, no base64, no per-element encoding). Only
numeric dtypes are accepted on decoding, and the byte count must match the
shape, so nothing received can become an object array or run code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distlda.corpora.csr import CsrChunk

__all__ = ["WireError", "encode_array", "decode_array", "encode_chunk", "decode_chunk", "plain"]

_ALLOWED_KINDS = set("biuf")


class WireError(ValueError):
    """A value received from the network does not have the expected form."""


def encode_array(arr: np.ndarray) -> dict[str, Any]:
    """A numeric array as ``{dtype, shape, data}`` (C order bytes)."""
    a = np.ascontiguousarray(arr)
    if a.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"only numeric arrays can be sent, not {a.dtype}")
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(value: Any, name: str = "array") -> np.ndarray:
    """Inverse of :func:`encode_array`; a writable array. WireError when malformed."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data"}:
        raise WireError(f"{name}: expected an encoded array (dtype, shape, data)")
    try:
        dtype = np.dtype(value["dtype"])
    except TypeError:
        raise WireError(f"{name}: unknown dtype {value['dtype']!r}") from None
    if dtype.kind not in _ALLOWED_KINDS:
        raise WireError(f"{name}: dtype {dtype} is not numeric")
    shape = value["shape"]
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"{name}: bad shape {shape!r}")
    data = value["data"]
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"{name}: data must be bytes")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"{name}: {len(data)} bytes for shape {list(shape)} of {dtype} (expected {expected})")
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape)


def encode_chunk(chunk: CsrChunk) -> dict[str, Any]:
    """A CSR chunk as a msgpack-safe dict."""
    return {"indptr": encode_array(chunk.indptr), "ids": encode_array(chunk.ids),
            "counts": encode_array(chunk.counts), "start": int(chunk.start)}


def decode_chunk(value: Any, name: str = "chunk") -> CsrChunk:
    """Inverse of :func:`encode_chunk`. Checks the structure (types, lengths, ``indptr``) with errors naming
    ``name``; the values of ids and counts are for :func:`distlda.corpora.csr.validate_chunk` to judge."""
    if not isinstance(value, dict) or not {"indptr", "ids", "counts", "start"} <= set(value):
        raise WireError(f"{name}: expected an encoded chunk (indptr, ids, counts, start)")
    start = value["start"]
    if not isinstance(start, int) or start < 0:
        raise WireError(f"{name}: bad start {start!r}")
    indptr = decode_array(value["indptr"], f"{name}.indptr")
    ids = decode_array(value["ids"], f"{name}.ids")
    counts = decode_array(value["counts"], f"{name}.counts")
    if indptr.ndim != 1 or ids.ndim != 1 or counts.ndim != 1 or len(indptr) < 1:
        raise WireError(f"{name}: indptr, ids and counts must be 1-D (indptr at least of length 1)")
    if indptr.dtype.kind not in "iu" or ids.dtype.kind not in "iu" or counts.dtype.kind != "f":
        raise WireError(f"{name}: indptr and ids must hold integers and counts floats")
    if len(ids) != len(counts):
        raise WireError(f"{name}: ids and counts differ in length ({len(ids)} != {len(counts)})")
    if indptr[0] != 0 or indptr[-1] != len(ids) or np.any(np.diff(indptr) < 0):
        raise WireError(f"{name}: indptr must start at 0, never decrease and end at len(ids) ({len(ids)})")
    if len(ids) and (ids.min() < np.iinfo(np.int32).min or ids.max() > np.iinfo(np.int32).max):
        raise WireError(f"{name}: term ids out of the int32 range")
    return CsrChunk(indptr.astype(np.int64, copy=False), ids.astype(np.int32, copy=False), counts, start)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python numbers, recursively (msgpack would mangle them)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
