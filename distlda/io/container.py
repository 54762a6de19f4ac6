"""A single-file container of named numpy arrays plus JSON metadata, with no pickle.

Layout::

    8 bytes   magic  b"DLDACNT1"
    8 bytes   little-endian uint64: length H of the JSON header
    H bytes   UTF-8 JSON: {"kind": ..., "meta": {...}, "arrays": {name: {dtype, shape, offset}}}
    padding   to a multiple of 64 bytes
    arrays    raw C-order bytes, each starting at a 64-byte-aligned offset

Arrays can be memory-mapped on load (``mmap='r'`` / ``'c'`` / ``'r+'``), and a
file is written under a temporary name and renamed into place, so a crash while
saving never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["ContainerError", "write_container", "read_container", "atomic_write", "atomic_write_bytes",
           "encode_strings", "decode_strings"]

MAGIC = b"DLDACNT1"
ALIGN = 64
_ALLOWED_KINDS = set("biuf")  # bool, signed, unsigned, float: no objects, no strings
_MMAP_MODES = {None, "r", "r+", "c"}


class ContainerError(ValueError):
    """A file is not a distlda container, is truncated, or is of another kind."""


def _pad(n: int) -> int:
    return (-n) % ALIGN


def write_container(path: str | os.PathLike, kind: str, meta: Mapping[str, Any],
                    arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` and JSON-serialisable ``meta`` to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        Destination file; its folder must exist.
    kind : str
        What the file holds (for example ``"distlda.LdaModel"``); checked on load.
    meta : mapping
        JSON-serialisable metadata.
    arrays : mapping of str to numpy.ndarray
        Numeric arrays (bool, integer or float); object arrays are refused.
    """
    path = Path(path)
    table: dict[str, dict[str, Any]] = {}
    prepared: list[np.ndarray] = []
    offset = 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"array {name!r} has dtype {a.dtype}; only numeric arrays can be stored")
        table[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
        prepared.append(a)
        offset += a.nbytes + _pad(a.nbytes)
    header = json.dumps({"kind": kind, "meta": meta, "arrays": table}, allow_nan=True).encode("utf-8")
    data_start = len(MAGIC) + 8 + len(header)
    data_start += _pad(data_start)

    def write(fh: Any) -> None:
        fh.write(MAGIC)
        fh.write(len(header).to_bytes(8, "little"))
        fh.write(header)
        fh.write(b"\0" * (data_start - len(MAGIC) - 8 - len(header)))
        for a in prepared:
            fh.write(memoryview(a).cast("B") if a.nbytes else b"")
            fh.write(b"\0" * _pad(a.nbytes))

    atomic_write(path, write)


def atomic_write(path: str | os.PathLike, writer: Any) -> None:
    """Call ``writer(fh)`` on a temporary file beside ``path``, fsync it, and rename it to ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    atomic_write(path, lambda fh: fh.write(data))


def read_container(path: str | os.PathLike, kind: str | None = None,
                   mmap: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a container written by :func:`write_container`.

    Parameters
    ----------
    path : str or path-like
    kind : str, optional
        When given, the file must hold this kind; otherwise :class:`ContainerError`.
    mmap : {None, 'r', 'r+', 'c'}
        Memory-map the arrays with this mode instead of reading them into memory.

    Returns
    -------
    meta : dict
    arrays : dict of str to numpy.ndarray
    """
    if mmap not in _MMAP_MODES:
        raise ValueError(f"mmap must be one of None, 'r', 'r+', 'c'; got {mmap!r}")
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(len(MAGIC))
        if magic != MAGIC:
            raise ContainerError(f"{path} is not a distlda file (bad magic bytes {magic[:8]!r})")
        raw_len = fh.read(8)
        if len(raw_len) != 8:
            raise ContainerError(f"{path} is truncated (no header length)")
        hlen = int.from_bytes(raw_len, "little")
        size = os.fstat(fh.fileno()).st_size
        if hlen > size:
            raise ContainerError(f"{path} is truncated or corrupt (header of {hlen} bytes in a file of {size})")
        try:
            header = json.loads(fh.read(hlen).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContainerError(f"{path} has a corrupt header: {exc}") from None
    if not isinstance(header, dict) or not {"kind", "meta", "arrays"} <= header.keys():
        raise ContainerError(f"{path} has a malformed header")
    if kind is not None and header["kind"] != kind:
        raise ContainerError(f"{path} holds a {header['kind']!r}, not a {kind!r}")
    data_start = len(MAGIC) + 8 + hlen
    data_start += _pad(data_start)
    arrays: dict[str, np.ndarray] = {}
    for name, spec in header["arrays"].items():
        dtype = np.dtype(spec["dtype"])
        if dtype.kind not in _ALLOWED_KINDS:
            raise ContainerError(f"{path}: array {name!r} has a disallowed dtype {dtype}")
        shape = tuple(int(s) for s in spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        start = data_start + int(spec["offset"])
        if start + count * dtype.itemsize > size:
            raise ContainerError(f"{path} is truncated (array {name!r} runs past the end)")
        if mmap is not None and count > 0:
            arrays[name] = np.memmap(path, dtype=dtype, mode=mmap, offset=start, shape=shape)
        else:
            arrays[name] = np.fromfile(path, dtype=dtype, count=count, offset=start).reshape(shape)
    return header["meta"], arrays


def encode_strings(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 byte array and int64 offsets (``len(strings) + 1`` of them)."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def decode_strings(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Inverse of :func:`encode_strings`."""
    raw = bytes(np.asarray(data, dtype=np.uint8))
    bounds = np.asarray(offsets).tolist()
    return [raw[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:])]
