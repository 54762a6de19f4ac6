"""Letting the pages of a memory-mapped file leave a process's resident memory.

Reading a memory-mapped corpus maps its pages into the process: its resident
size (RSS) grows with every document read, up to the size of the corpus, although
the pages are the operating system's file cache and cost nothing to drop. Tools
that watch RSS (and the kernel's out-of-memory scoring) count them all the same.
:func:`release_pages` unmaps the whole pages inside an array's memory with
``madvise(MADV_DONTNEED)``: for a read-only file mapping the data stay in the
file cache, and the next access maps them again.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import sys

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["release_pages"]

_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") and _MADV_DONTNEED is not None \
    else None


def release_pages(view: np.ndarray) -> None:
    """Drop the whole pages inside ``view`` from this process's resident memory.

    Only for views of a **read-only file mapping** (``numpy.memmap`` with mode ``'r'``): on anonymous or
    writable memory the operating system may discard the data. Does nothing off Linux or for small views.
    """
    if _libc is None or view.size == 0:
        return
    start = view.ctypes.data
    first = -(-start // _PAGE) * _PAGE
    end = (start + view.nbytes) // _PAGE * _PAGE
    if end <= first:
        return
    if _libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(end - first), _MADV_DONTNEED) != 0:
        logger.debug("madvise failed: errno %d", ctypes.get_errno())
