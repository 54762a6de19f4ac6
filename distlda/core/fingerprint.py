"""A fingerprint of what decides distlda's numbers, so a cluster never mixes two kinds of arithmetic.

A cluster gives the same model as a local run because the client and every
worker run the same kernels on the same inputs (see docs/architecture.md). A
worker running another distlda release — or another numba or numpy, which
compile and round the kernels — would compute slightly different statistics,
and the model would drift from the local one with no error. So would a worker whose kernels are compiled for
another CPU: fast-math lets LLVM pick vector widths, interleaving and fused multiply-adds per target (seen: a
worker compiled with ``NUMBA_CPU_NAME=generic`` differed by up to 3e-8 after one update). The client sends
:func:`numerics_id` with the model's parameters; a worker whose own differs
refuses to join (:meth:`distlda.cluster.worker.Worker.initialize`). A cluster of mixed CPU types runs
with one common target set on every host (``NUMBA_CPU_NAME``, see docs/distributed.md).
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from importlib import metadata
from pathlib import Path

from distlda.kernels.compile import compile_target

__all__ = ["numerics_id", "numerics_description"]

_FOLDERS = ("kernels", "core", "corpora")
"""The packages whose code decides the numbers of an E-step, a replay or an M-step — the kernels, the algorithm
(the replay included: ``core.mstep.replay_mstep``) and the chunks they read: every module in them is hashed, so a
new file is covered without anyone listing it."""

_LIBRARIES = ("numba", "llvmlite", "numpy")


def _library_versions() -> list[str]:
    versions = []
    for name in _LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} ?")
    return versions


def _source_files(root: Path) -> list[Path]:
    """The modules of :data:`_FOLDERS` below the package root ``root``, in a fixed order."""
    return sorted(path for folder in _FOLDERS for path in (root / folder).glob("*.py"))


@functools.lru_cache(maxsize=1)
def numerics_id() -> str:
    """16 hex digits: a hash of the kernels' source, of the numba, llvmlite and numpy versions and of the CPU
    target the kernels are compiled for (:func:`distlda.kernels.compile.compile_target`)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    for line in _library_versions():
        digest.update(line.encode())
    for part in compile_target():
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def numerics_description() -> str:
    """The fingerprint with what it covers, for messages:
    ``'1a2b… (distlda 0.1.0, numba 0.60.0, …, CPU target haswell/5c1e0f3a)'`` (the CPU name and a checksum of its
    feature string)."""
    from distlda import __version__

    name, features = compile_target()
    target = f"CPU target {name}/{zlib.crc32(features.encode()):08x}"
    return f"{numerics_id()} (distlda {__version__}, {', '.join(_library_versions())}, {target})"
