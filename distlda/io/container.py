"""A single-file container of named numpy arrays plus JSON metadata, with no pickle.

Layout::

    8 bytes   magic  b"DLDACNT2"
    8 bytes   little-endian uint64: length H of the JSON header
    4 bytes   little-endian uint32: CRC-32 of the H header bytes
    H bytes   UTF-8 JSON: {"kind": ..., "meta": {...}, "arrays": {name: {dtype, shape, offset, crc32}}}
    padding   to a multiple of 64 bytes
    arrays    raw C-order bytes, each starting at a 64-byte-aligned offset

Every part has a checksum (zlib's CRC-32, about 3 GB/s on one core): the header
is checked on every load, each array when it is read into memory, and a
memory-mapped array on ``verify=True`` (:func:`verify_container` checks a whole
file). A mismatch is a :class:`ContainerError` naming the file and the part.
Files of the first format (``DLDACNT1``, no checksums) still load.

Arrays can be memory-mapped on load (``mmap='r'`` / ``'c'`` / ``'r+'``), and a
file is written under a temporary name and renamed into place, so a crash while
saving never leaves a half-written file where a good one was; temporaries left
by a writer that was killed are removed at the next write or load of the file.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["ContainerError", "write_container", "read_container", "verify_container", "atomic_write",
           "atomic_write_bytes", "remove_stale_temporaries", "process_alive", "encode_strings", "decode_strings"]

MAGIC = b"DLDACNT2"
MAGIC_V1 = b"DLDACNT1"  # the first format: no checksums
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
        table[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "crc32": _crc32(a)}
        prepared.append(a)
        offset += a.nbytes + _pad(a.nbytes)
    header = json.dumps({"kind": kind, "meta": meta, "arrays": table}, allow_nan=True).encode("utf-8")
    prefix = len(MAGIC) + 8 + 4
    data_start = prefix + len(header)
    data_start += _pad(data_start)

    def write(fh: Any) -> None:
        fh.write(MAGIC)
        fh.write(len(header).to_bytes(8, "little"))
        fh.write(zlib.crc32(header).to_bytes(4, "little"))
        fh.write(header)
        fh.write(b"\0" * (data_start - prefix - len(header)))
        for a in prepared:
            fh.write(memoryview(a).cast("B") if a.nbytes else b"")
            fh.write(b"\0" * _pad(a.nbytes))

    atomic_write(path, write)


def _crc32(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")) if a.nbytes else 0


def _umask() -> int:
    """This process's umask, read from /proc where it can be (setting it to read it back is process-wide, and
    another thread creating a file at that moment would get the wrong permissions)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _temporary_prefix(path: Path) -> str:
    """The name start of ``path``'s temporaries: the file, this host and a process id follow."""
    return f".{path.name}.{socket.gethostname()}."


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` left by writers on this host that no longer run (killed mid-write).

    A temporary is named ``.NAME.HOST.PID.RANDOM.tmp``; one whose process is alive is another write in
    progress and is left alone, and so are those of other hosts (a shared file system). Returns what was removed.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    prefix = _temporary_prefix(path)
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for tmp in candidates:
        pid_text = tmp.name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or process_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process of this host with this PID runs (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: str | os.PathLike, writer: Any) -> None:
    """Call ``writer(fh)`` on a temporary file beside ``path``, fsync it, and rename it to ``path``.

    Temporaries of ``path`` left by a writer that was killed are removed first.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=folder)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
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


def read_container(path: str | os.PathLike, kind: str | None = None, mmap: str | None = None,
                   verify: bool | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a container written by :func:`write_container`.

    Parameters
    ----------
    path : str or path-like
    kind : str, optional
        When given, the file must hold this kind; otherwise :class:`ContainerError`.
    mmap : {None, 'r', 'r+', 'c'}
        Memory-map the arrays with this mode instead of reading them into memory.
    verify : bool, optional
        Check the arrays' checksums (default: when they are read into memory, not when they are mapped).
        The header's is always checked.

    Returns
    -------
    meta : dict
    arrays : dict of str to numpy.ndarray

    Raises
    ------
    ContainerError
        Not a distlda file, of another kind, truncated, or a checksum that does not match (the message names the
        file and the part).
    """
    if mmap not in _MMAP_MODES:
        raise ValueError(f"mmap must be one of None, 'r', 'r+', 'c'; got {mmap!r}")
    path = Path(path)
    remove_stale_temporaries(path)
    header, data_start, size = _read_header(path)
    if kind is not None and header["kind"] != kind:
        raise ContainerError(f"{path} holds a {header['kind']!r}, not a {kind!r}")
    verify = mmap is None if verify is None else verify
    arrays: dict[str, np.ndarray] = {}
    for name, spec in header["arrays"].items():
        dtype, shape, start = _array_spec(path, name, spec, data_start, size)
        count = int(np.prod(shape, dtype=np.int64))
        if mmap is not None and count > 0:
            arrays[name] = np.memmap(path, dtype=dtype, mode=mmap, offset=start, shape=shape)
        else:
            arrays[name] = np.fromfile(path, dtype=dtype, count=count, offset=start).reshape(shape)
        if verify and "crc32" in spec and _crc32(arrays[name]) != spec["crc32"]:
            raise ContainerError(f"{path} is corrupt: the checksum of array {name!r} does not match (the file "
                                 "was changed or damaged after it was written)")
    return header["meta"], arrays


def verify_container(path: str | os.PathLike) -> dict[str, Any]:
    """Check every checksum of a container; returns its header. ContainerError names the first bad part."""
    read_container(path, mmap="r", verify=True)
    return _read_header(Path(path))[0]


def _read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """The JSON header of a container, the offset of its data, and the file's size."""
    with open(path, "rb") as fh:
        magic = fh.read(len(MAGIC))
        if magic not in (MAGIC, MAGIC_V1):
            raise ContainerError(f"{path} is not a distlda file (bad magic bytes {magic[:8]!r})")
        raw_len = fh.read(8)
        if len(raw_len) != 8:
            raise ContainerError(f"{path} is truncated (no header length)")
        hlen = int.from_bytes(raw_len, "little")
        expected = int.from_bytes(fh.read(4), "little") if magic == MAGIC else None
        prefix = len(MAGIC) + 8 + (4 if magic == MAGIC else 0)
        size = os.fstat(fh.fileno()).st_size
        if prefix + hlen > size:
            raise ContainerError(f"{path} is truncated or corrupt (header of {hlen} bytes in a file of {size})")
        raw = fh.read(hlen)
    if expected is not None and zlib.crc32(raw) != expected:
        raise ContainerError(f"{path} is corrupt: the checksum of its header does not match")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContainerError(f"{path} has a corrupt header: {exc}") from None
    if not isinstance(header, dict) or not {"kind", "meta", "arrays"} <= header.keys() \
            or not isinstance(header["arrays"], dict):
        raise ContainerError(f"{path} has a malformed header")
    data_start = prefix + hlen
    return header, data_start + _pad(data_start), size


def _array_spec(path: Path, name: str, spec: Any, data_start: int, size: int) -> tuple[np.dtype, tuple, int]:
    """dtype, shape and file offset of one array of the header, checked against the file."""
    try:
        dtype = np.dtype(spec["dtype"])
        shape = tuple(int(s) for s in spec["shape"])
        start = data_start + int(spec["offset"])
    except (TypeError, KeyError, ValueError) as exc:
        raise ContainerError(f"{path}: array {name!r} has a malformed description ({exc})") from None
    if dtype.kind not in _ALLOWED_KINDS:
        raise ContainerError(f"{path}: array {name!r} has a disallowed dtype {dtype}")
    if any(s < 0 for s in shape) or start < data_start:
        raise ContainerError(f"{path}: array {name!r} has a malformed description")
    count = int(np.prod(shape, dtype=np.int64))
    if start + count * dtype.itemsize > size:
        raise ContainerError(f"{path} is truncated (array {name!r} runs past the end)")
    return dtype, shape, start


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
