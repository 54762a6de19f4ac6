"""A fingerprint of what decides distlda's numbers, so a cluster never mixes two kinds of arithmetic.

A cluster gives the same model as a local run because the client and every
worker run the same kernels on the same inputs (see docs/architecture.md). A
worker running another distlda release — or another numba or numpy, which
compile and round the kernels — would compute slightly different statistics,
and the model would drift from the local one with no error. The client sends
:func:`numerics_id` with the model's parameters; a worker whose own differs
refuses to join (:meth:`distlda.models.lda_worker.Worker.initialize`).
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

__all__ = ["numerics_id", "numerics_description"]

_SOURCES = (
    "models/inference.py",
    "models/mstep.py",
    "models/special.py",
    "models/rng.py",
    "models/estep.py",
    "models/update.py",
    "models/priors.py",
    "models/ldastate.py",
    "models/jit.py",
    "cluster/replica.py",
    "corpora/csr.py",
)
"""The modules whose code decides the numbers of an E-step, a replay or an M-step (paths in the package)."""

_LIBRARIES = ("numba", "llvmlite", "numpy")


def _library_versions() -> list[str]:
    versions = []
    for name in _LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} ?")
    return versions


@functools.lru_cache(maxsize=1)
def numerics_id() -> str:
    """16 hex digits: a hash of the kernels' source and of the numba, llvmlite and numpy versions."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update(name.encode())
        digest.update((root / name).read_bytes())
    for line in _library_versions():
        digest.update(line.encode())
    return digest.hexdigest()[:16]


def numerics_description() -> str:
    """The fingerprint with what it covers, for messages: ``'1a2b… (distlda 0.1.0, numba 0.60.0, …)'``."""
    from distlda import __version__

    return f"{numerics_id()} (distlda {__version__}, {', '.join(_library_versions())})"
