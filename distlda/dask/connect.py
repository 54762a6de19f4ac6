"""Dask clients for the command line and the benchmarks, and the peak memory of a Dask cluster's processes."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import sys
from typing import Any, Iterator

from distlda.dask.errors import live_workers

logger = logging.getLogger(__name__)

__all__ = ["parse_spec", "open_client", "peak_memory", "dask_missing"]

_LOCAL = re.compile(r"local:(\d+)\Z")


def dask_missing() -> str | None:
    """Why the Dask backend cannot be used here (dask or distributed missing), or None."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        return f"the Dask backend needs dask and distributed ({exc}): pip install 'distlda[dask]'"
    return None


def parse_spec(spec: str) -> tuple[str, Any]:
    """``('local', N)`` for ``local:N``, ``('address', spec)`` for a scheduler address (``tcp://HOST:8786``,
    ``tls://HOST:8786``...); ValueError otherwise."""
    local = _LOCAL.match(spec)
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= 256:
            raise ValueError(f"local:N needs 1 to 256 workers, got {spec!r}")
        return "local", workers
    if re.match(r"[a-z][a-z0-9+.-]*://\S+\Z", spec):
        return "address", spec
    raise ValueError(f"--dask takes a scheduler address (tcp://HOST:8786) or local:N, got {spec!r}")


@contextlib.contextmanager
def open_client(spec: str, security: Any = None, timeout: float = 30.0) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (see :func:`parse_spec`), closed at the end; ``local:N`` starts a
    ``LocalCluster`` of N worker processes, each given its share of the cores (its E-step uses that many
    threads), and stops it. ``security`` (a ``distributed.security.Security``) is passed through as it is; without it Dask's
    configuration (``distributed.comm.tls.*``) applies."""
    kind, value = parse_spec(spec)
    missing = dask_missing()
    if missing:
        raise RuntimeError(missing)
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if kind == "local":
            threads = max(1, (os.cpu_count() or 1) // value)  # the E-step of each worker uses its share
            cluster = stack.enter_context(LocalCluster(n_workers=value, threads_per_worker=threads, processes=True,
                                                       dashboard_address=None, security=security))
            client = stack.enter_context(Client(cluster, security=security))
        else:
            client = stack.enter_context(Client(value, security=security, timeout=timeout))
        logger.info("Dask scheduler at %s with %d workers", client.scheduler.address, len(live_workers(client)))
        yield client


def _peak_rss() -> int:
    """This process's peak resident memory in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_memory(client: Any) -> dict[str, int]:
    """Peak resident memory (bytes) of the scheduler's process and of each worker's, by address. A
    ``LocalCluster``'s scheduler runs in the client's process, so its peak includes the client's."""
    peaks = {"scheduler": int(client.run_on_scheduler(_peak_rss))}
    peaks.update({address: int(value) for address, value in client.run(_peak_rss).items()})
    return peaks
