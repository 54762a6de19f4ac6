"""A copy of an array that is needed only if something fails, kept out of memory when it is large.

``update()`` keeps the statistics as they were before it started, so that bad input found half-way
through restores the model. For a model of K × V floats that copy is one more K × V array for the
whole run — the difference between three arrays' worth of peak memory and four. :class:`KeptArray`
keeps small copies in memory and writes large ones to a temporary file (a plain write, not a
mapping, so the pages are the file cache's, not the process's), read back only to restore.
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["KeptArray", "SPILL_BYTES"]

SPILL_BYTES = 64 * 1024 * 1024
"""Arrays of at least this many bytes are kept on disk; smaller ones in memory (writing them would cost more
than they weigh)."""


class KeptArray:
    """A copy of ``array`` as it is now, to put back with :meth:`restore_into` (see the module).

    Parameters
    ----------
    array : numpy.ndarray
    spill_bytes : int, optional
        Arrays this large or larger (default :data:`SPILL_BYTES`) go to a temporary file (in ``directory``, default the system's temporary
        folder); when that cannot be written (a full disk), the copy stays in memory and a warning says so.
    directory : str, optional
    """

    def __init__(self, array: np.ndarray, spill_bytes: int | None = None, directory: str | None = None) -> None:
        self.shape, self.dtype = array.shape, array.dtype
        self._copy: np.ndarray | None = None
        self._path: str | None = None
        if array.nbytes >= (SPILL_BYTES if spill_bytes is None else spill_bytes):
            self._path = self._write(array, directory)
        if self._path is None:
            self._copy = array.copy()

    @staticmethod
    def _write(array: np.ndarray, directory: str | None) -> str | None:
        path = None
        try:
            fd, path = tempfile.mkstemp(prefix="distlda-kept-", suffix=".npy", dir=directory)
            with os.fdopen(fd, "wb") as out:
                np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
            return path
        except OSError as exc:
            logger.warning("could not keep a copy of %.0f MB on disk in %s (%s): keeping it in memory",
                           array.nbytes / 1e6, directory or tempfile.gettempdir(), exc)
            if path is not None:
                _remove(path)
            return None

    @property
    def on_disk(self) -> bool:
        """Whether the copy is in a temporary file."""
        return self._path is not None

    def restore_into(self, out: np.ndarray) -> None:
        """Write the kept values into ``out`` (of the kept shape)."""
        if out.shape != self.shape:
            raise ValueError(f"cannot restore an array of shape {self.shape} into one of shape {out.shape}")
        if self._copy is not None:
            out[...] = self._copy
            return
        if self._path is None:
            raise RuntimeError("the kept copy was already discarded")
        with open(self._path, "rb") as src:
            version = np.lib.format.read_magic(src)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(src)
            if tuple(shape) != tuple(self.shape) or dtype != self.dtype:
                raise OSError(f"the kept copy in {self._path} changed on disk (shape {shape}, dtype {dtype})")
            if out.flags.c_contiguous and out.dtype == dtype:
                got = src.readinto(memoryview(out.reshape(-1)).cast("B"))  # straight into the array: no 2nd copy
                if got != out.nbytes:
                    raise OSError(f"the kept copy in {self._path} is truncated ({got} of {out.nbytes} bytes)")
            else:
                out[...] = np.fromfile(src, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def discard(self) -> None:
        """Let the copy go (its file is removed)."""
        self._copy = None
        path, self._path = self._path, None
        if path is not None:
            _remove(path)

    def __del__(self) -> None:
        path = getattr(self, "_path", None)
        if path is not None:
            _remove(path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
