"""The floating-point mode of the E-step kernels: subnormals flushed to zero while they run.

The E-step kernels multiply exp(E[log θ]) by exp(E[log β]); in float32 both are
often around 1e-20 to 1e-30 for topics a document or word does not use, and their
products fall below the normal range (1.2e-38). On x86 every such product takes a
microcode assist of a hundred cycles or more, which made the E-step 4-5x slower at
K = 50 or 64 (where ψ(α) leaves exp(E[log θ]) just inside the float32 range) than at
K = 100 (where it underflows to 0 at once). :func:`flush_subnormals` switches the
calling thread to flush-to-zero / denormals-are-zero for the duration of a kernel and
:func:`restore_fp_mode` switches it back. Such values are at least 1e31 times smaller
than the ε every normaliser adds, so flushing them changes no figure that matters.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["flush_subnormals", "restore_fp_mode"]

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)


def _mxcsr_call(builder: ir.IRBuilder, name: str, slot: ir.Value) -> None:
    """Call ``llvm.x86.sse.stmxcsr`` / ``ldmxcsr`` on the 32-bit ``slot``."""
    ptr = ir.IntType(8).as_pointer()
    fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ir.VoidType(), [ptr]), name)
    builder.call(fn, [builder.bitcast(slot, ptr)])


@intrinsic
def flush_subnormals(typingctx):  # type: ignore[no-untyped-def]
    """Set flush-to-zero and denormals-are-zero on this thread (x86; elsewhere nothing); returns the previous mode
    for :func:`restore_fp_mode`."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        if not _X86:
            return ir.Constant(ir.IntType(32), 0)
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(ir.IntType(32), _FTZ_DAZ)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old

    return types.uint32(), codegen


@intrinsic
def restore_fp_mode(typingctx, mode):  # type: ignore[no-untyped-def]
    """Put back the FP mode :func:`flush_subnormals` returned."""
    if mode != types.uint32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.none(types.uint32), codegen
