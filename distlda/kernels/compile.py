"""How distlda's numba kernels are compiled: one set of options for every kernel, and the target it is for.

Kernels are serial (``nogil``, so :func:`distlda.kernels.parallel.parallel_for`
runs them on several threads), cached on disk, and fast-math: ``reassoc``
vectorises the dot products and ``contract`` fuses multiply-adds. They are not
numba ``parallel=True`` loops: see :mod:`distlda.kernels.parallel` for why. The
E-step's inner loops are written as explicit vectors (:mod:`distlda.kernels.vectorir`)
and run with subnormals flushed (:mod:`distlda.kernels.fpmode`).
"""

from __future__ import annotations

import functools

__all__ = ["FASTMATH", "KERNEL", "INLINE", "compile_target"]

FASTMATH = True
"""LLVM fast-math flags of every kernel (all of them)."""

KERNEL = dict(fastmath=FASTMATH, error_model="numpy", cache=True, nogil=True)
"""``njit`` options of a kernel that :func:`distlda.kernels.parallel.parallel_for` runs over a range."""

INLINE = dict(fastmath=FASTMATH, error_model="numpy", inline="always", cache=True)
"""``njit`` options of a helper inlined into the kernels."""


@functools.lru_cache(maxsize=1)
def compile_target() -> tuple[str, str]:
    """The CPU name and feature string numba compiles the kernels for, as numba itself resolves them:
    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set, else this machine's CPU.

    Fast-math lets LLVM choose vector widths, interleaving and fused multiply-adds per target, so two
    targets may round the same sums differently; the cluster's fingerprint includes this pair.
    """
    import llvmlite.binding as llvm
    from numba.core import codegen, config

    name = config.CPU_NAME if config.CPU_NAME is not None else llvm.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    return str(name), str(features)
