"""Running a compiled kernel over a range of work items on several threads.

distlda's kernels are serial numba functions that release the GIL and take the
half-open range ``[lo, hi)`` of items (documents, blocks of documents, words,
blocks of words) to work on; :func:`parallel_for` cuts ``[0, n)`` into pieces
and lets a pool of threads take them one after another. Every item's result is
written to its own place and sums over items are reduced later in a fixed order,
so results do not depend on the number of threads.

Why not numba's ``parallel=True``: numba compiles a parallel loop one way when it
compiles it in the running process and another way when it loads it from its
on-disk cache, and with fast-math the two round differently in the last bits. A
cluster's workers, loading the cache their client had just written, then drifted
from the client. Serial kernels are the same code either way.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["max_threads", "current_threads", "kernel_threads", "parallel_for"]

_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def max_threads() -> int:
    """Threads available to the kernels: the cores this process may run on (``NUMBA_NUM_THREADS`` caps it)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    cap = os.environ.get("NUMBA_NUM_THREADS")
    if cap and cap.isdigit() and int(cap) > 0:
        cores = min(cores, int(cap))
    return max(1, cores)


def current_threads() -> int:
    """Threads the kernels started from this thread use (see :func:`kernel_threads`)."""
    return getattr(_local, "threads", None) or max_threads()


@contextmanager
def kernel_threads(threads: int) -> Iterator[None]:
    """Run the kernels started from this thread, inside the block, on ``threads`` threads (at least 1)."""
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous = getattr(_local, "threads", None)
    _local.threads = int(threads)
    try:
        yield
    finally:
        _local.threads = previous


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, max_threads() - 1), thread_name_prefix="distlda-kernel")
        return _pool


def parallel_for(kernel: Callable[..., None], n: int, *args: Any, pieces_per_thread: int = 8) -> None:
    """Call ``kernel(*args, lo, hi)`` over pieces ``[lo, hi)`` covering ``[0, n)``, on :func:`current_threads`
    threads (the calling thread is one of them). Pieces are handed out in order as threads become free, so
    items of uneven cost balance out. The first exception raised by a piece is raised here."""
    n = int(n)
    if n <= 0:
        return
    threads = min(current_threads(), n)
    if threads <= 1:
        kernel(*args, 0, n)
        return
    step = max(1, math.ceil(n / (threads * pieces_per_thread)))
    counter = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        while True:
            lo = next(counter) * step
            if lo >= n:
                return
            kernel(*args, lo, min(lo + step, n))

    helpers = [_executor().submit(work) for _ in range(threads - 1)]
    error: BaseException | None = None
    try:
        work()
    except BaseException as exc:  # let the helpers finish before raising: they write into the caller's arrays
        error = exc
    for helper in helpers:
        try:
            helper.result()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
