"""Training on a Dask cluster: the second distributed backend, beside the Pyro5 cluster of :mod:`distlda.cluster`.

:class:`distlda.dask.backend.DaskEStep` runs the E-step of every few mini-batches as one task per Dask worker and keeps
a replica of the model on each worker (:mod:`distlda.dask.replicas`), so only γ crosses the network per M-step
and the model is bitwise the one a local run makes. :mod:`distlda.dask.connect` opens clients for the command
line (``tcp://HOST:8786``, ``local:N``) and reports peak memory. Nothing here imports dask until it is used: the
core install does not need it (``pip install 'distlda[dask]'`` adds it).
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_dask_client"]


def is_dask_client(obj: Any) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (False, without importing dask, for booleans and None)."""
    if obj is None or isinstance(obj, (bool, int, str, dict)):
        return False
    try:
        from distributed import Client
    except ImportError:  # without dask there can be no Dask client
        return False
    return isinstance(obj, Client)
