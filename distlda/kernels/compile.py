"""How distlda's numba kernels are compiled: one set of options for every kernel.

Kernels are serial (``nogil``, so :func:`distlda.kernels.parallel.parallel_for`
runs them on several threads), cached on disk, and fast-math: ``reassoc``
vectorises the dot products and ``contract`` fuses multiply-adds. They are not
numba ``parallel=True`` loops: see :mod:`distlda.kernels.parallel` for why.
"""

from __future__ import annotations

__all__ = ["FASTMATH", "KERNEL", "INLINE"]

FASTMATH = True
"""LLVM fast-math flags of every kernel (all of them)."""

KERNEL = dict(fastmath=FASTMATH, error_model="numpy", cache=True, nogil=True)
"""``njit`` options of a kernel that :func:`distlda.kernels.parallel.parallel_for` runs over a range."""

INLINE = dict(fastmath=FASTMATH, error_model="numpy", inline="always", cache=True)
"""``njit`` options of a helper inlined into the kernels."""
