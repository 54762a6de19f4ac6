"""How much memory a training run needs, and how much this process may use: checked before allocating.

The large arrays of online LDA are all K × V (topics × vocabulary); everything
else (γ of a chunk, per-thread buffers of K floats, the CSR chunk itself) is
small beside them on any model that could exhaust a machine. The estimate
counts the K × V arrays at the moment most of them are alive at once:

* building the model: the statistics (model dtype) and the random initial draw,
  made in float64 before it is cast into them;
* training: the statistics, exp(E[log β]), the copy ``update()`` keeps to restore
  the model on bad input, and the mini-batch's raw statistics;
* held-out evaluation (the command line's ``on_mstep``), while the batch is still
  referenced: the four training arrays, the normalised topics (model dtype) and
  two float64 K × V arrays the bound needs at once (the floored topics and their
  word-major copy);
* a per-word eta (``eta='auto'``) or a K × V eta adds one array to each phase.

The available memory is the smaller of the kernel's ``MemAvailable`` and what is
left under this process's cgroup limit (v1 or v2), when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["MemoryEstimate", "estimate_training_memory", "available_memory", "describe", "BASE_PROCESS_BYTES"]

BASE_PROCESS_BYTES = 250_000_000
"""Python, numpy, numba and the compiled kernels of a training process, before any model array (resident size of
`distlda train` after a first small model: 200 MB on Linux x86-64 with Python 3.11), with some room."""

_NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a huge page-aligned number


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs at its peak.

    Attributes
    ----------
    total : int
        The peak: ``base`` plus the largest phase.
    base : int
        The process without model arrays.
    phases : dict of str to int
        Bytes of the K × V arrays alive together in each phase (``build``, ``train``, ``evaluate``).
    array_bytes : int
        One K × V array in the model's dtype.
    """

    total: int
    base: int
    phases: dict[str, int] = field(default_factory=dict)
    array_bytes: int = 0

    @property
    def peak_phase(self) -> str:
        """The phase that sets the peak."""
        return max(self.phases, key=self.phases.__getitem__)


def estimate_training_memory(num_topics: int, num_terms: int, dtype: object = np.float32, *,
                             threads: int = 1, chunksize: int = 2000, heldout: bool = False,
                             eta_per_term: bool = False, base: int = BASE_PROCESS_BYTES) -> MemoryEstimate:
    """Estimate the peak memory of training an LdaModel of ``num_topics`` × ``num_terms``.

    Parameters
    ----------
    num_topics, num_terms : int
        K and V.
    dtype : numpy dtype
        The model's dtype (float32 or float64).
    threads : int
        E-step threads: each holds a few K-vectors.
    chunksize : int
        Documents per chunk: γ and its expectation are chunksize × K each.
    heldout : bool
        The run evaluates a held-out corpus after M-steps (``distlda train`` with a held-out part).
    eta_per_term : bool
        Eta is stored per term or per topic and term (learned eta): one more K × V array.
    base : int
        Bytes of the process before any model array.

    Returns
    -------
    MemoryEstimate
    """
    itemsize = np.dtype(dtype).itemsize
    kv = int(num_topics) * int(num_terms)
    one = kv * itemsize
    eta = one if eta_per_term else int(num_terms) * itemsize
    small = int(num_topics) * itemsize * (2 * int(chunksize) + 4 * max(int(threads), 1))
    phases = {
        "build": one + kv * 8 + eta,
        "train": 4 * one + eta + small,
        "evaluate": 5 * one + 2 * kv * 8 + eta if heldout else 0,
    }
    return MemoryEstimate(total=int(base) + max(phases.values()), base=int(base), phases=phases, array_bytes=one)


def available_memory() -> int | None:
    """Bytes this process can still allocate: ``MemAvailable``, lowered to what a cgroup limit leaves.

    Returns None when neither is known (not Linux).
    """
    candidates = [v for v in (_meminfo_available(), _cgroup_room()) if v is not None]
    return min(candidates) if candidates else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _NO_LIMIT else value


def _cgroup_room(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 unified, else v1), or None without a limit."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.lstrip("/")
        if hierarchy == "0" and controllers == "":
            files = ("memory.max", "memory.current")
            # inside a container the process's own cgroup is usually mounted as the root
            folders = [root / rel, root] if (root / "memory.max").exists() or (root / rel / "memory.max").exists() \
                else []
        elif "memory" in controllers.split(","):
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes")
            folders = [root / "memory" / rel, root / "memory"]
        else:
            continue
        for folder in folders:
            limit = _read_int(folder / files[0])
            if limit is not None:
                usage = _read_int(folder / files[1]) or 0
                return max(limit - usage, 0)
    return None


def describe(estimate: MemoryEstimate) -> str:
    """The estimate in words, for an error message."""
    during = {"build": "building the model", "train": "training", "evaluate": "evaluating held-out documents"}
    return (f"{estimate.total / 1e9:.1f} GB ({estimate.array_bytes / 1e6:,.0f} MB per topics × words array, peak "
            f"while {during[estimate.peak_phase]})")
