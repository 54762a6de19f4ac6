"""numba kernels, arrays in and out: special functions, random numbers, E-step, M-step, bound, threads.

Nothing here knows a model object, a corpus class or the network. The code in this
folder decides distlda's numbers, so the cluster's fingerprint
(:mod:`distlda.core.fingerprint`) hashes all of it.

numba's on-disk cache keeps a compiled kernel until the file that defines it changes,
but the kernels inline code of other files here (special functions, vector helpers):
an edit of those alone would leave stale machine code in the cache, silently (seen
while tuning the E-step). So the kernels are cached in a folder named after a hash of
every source file of this package: any change compiles them all afresh. The folder is
under ``NUMBA_CACHE_DIR`` when that is set, else under the user's cache folder
(``~/.cache/distlda/numba``); where neither can be written, numba's own default applies.
The setting is numba's global one, so it is put back once the kernels are defined.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _source_stamp() -> str:
    """12 hex digits of a hash of this package's source files."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _cache_folder() -> str | None:
    """A writable folder for this version's compiled kernels, or None."""
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "distlda", "numba")
    folder = os.path.join(base, f"kernels-{_source_stamp()}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _define_kernels() -> None:
    from numba.core import config

    folder = _cache_folder()
    before = config.CACHE_DIR
    if folder is not None:
        config.CACHE_DIR = folder  # read by each cached kernel as it is defined (numba's cache locator)
    try:
        from distlda.kernels import bound, estep, lazy, mstep, parallel, rng, special  # noqa: F401
    finally:
        config.CACHE_DIR = before


_define_kernels()
