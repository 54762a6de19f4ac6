"""The Dask backend's errors, and the checks of a client that raise them (before anything is sent)."""

from __future__ import annotations

from typing import Any

__all__ = ["DaskClusterError", "SchedulerLost", "WorkerLost", "DaskTimeout", "scheduler_address", "check_client",
           "live_workers",
           "one_line"]


class DaskClusterError(RuntimeError):
    """The Dask cluster failed a training run (the model keeps every M-step the client could still get)."""


class SchedulerLost(DaskClusterError):
    """The client lost its connection to the Dask scheduler."""


class WorkerLost(DaskClusterError):
    """A Dask worker left while tasks restricted to it were due (the backend recovers from it by itself)."""


class DaskTimeout(DaskClusterError):
    """The scheduler had no worker for the stall limit."""


def scheduler_address(client: Any) -> str:
    """The scheduler's address as the client knows it (a closed client may no longer know it)."""
    try:
        return str(client.scheduler.address)
    except Exception:  # noqa: BLE001 - only used in messages
        return "(unknown address)"


def live_workers(client: Any) -> dict[str, Any]:
    """The scheduler's workers now, by address, asked of the scheduler itself. (``client.scheduler_info()`` returns
    the client's cached identity, which its periodic refresh replaces with one without workers: read at the wrong
    moment, a cluster whose workers are all there seemed to have none.)"""
    return dict(client.sync(client.scheduler.identity, n_workers=-1).get("workers", {}))


def check_client(client: Any) -> list[str]:
    """The addresses of the client's workers; :class:`DaskClusterError` when it is closed or has none."""
    if getattr(client, "status", None) != "running":
        raise SchedulerLost(f"the Dask client of the scheduler at {scheduler_address(client)} is "
                            f"{getattr(client, 'status', 'not a client')}: connect it again")
    workers = sorted(live_workers(client))
    if not workers:
        raise DaskClusterError(f"the Dask scheduler at {scheduler_address(client)} has no workers: start some "
                               "with `dask worker ADDRESS`")
    return workers


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (an exception without a message gives its type alone)."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
