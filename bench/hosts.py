"""Measure a training on W scaled-down hosts: the one call the scaling benchmark (and any later design) needs.

:func:`measure` builds ``W + 2`` hosts of ``cores`` cores each with links of ``bandwidth × cores``
(a client, a server for the name server and the dispatcher, one host per worker; for W = 0 the
client alone, which is the local baseline), starts a cluster of one backend on them (``pyro``: the
name server and the dispatcher on the server, a ``distlda.cluster.worker`` on each worker host;
``dask``: the Dask scheduler on the server, a single-process ``dask worker`` on each worker host),
runs a training function in the client's host and returns its result, its timed seconds, and the
bytes and CPU seconds of every host over the timed part; then removes every host, cgroup and process.

The hosts themselves (cgroups, network namespaces, ``tc`` shaping, clean-up after Ctrl-C or a
crash) are :mod:`distlda.test.hosts`, :mod:`distlda.test.hostcluster` and
:mod:`distlda.test.daskhosts`: the tests use the same code, and tests import from the installed
package, never from ``bench/``.

A training function has the signature ``function(config, ns_conf, ready) -> dict``: it trains with
``ns_conf`` (None: locally; a Pyro5 ``ns_conf``; or ``{"scheduler": address}`` for Dask, which
``distlda.test.daskhosts.cluster_kwargs`` turns into ``LdaModel`` keywords), calls ``ready()`` after
its untimed warm-up, and returns JSON-able figures (``bench/scaling.py``'s ``train_on_host`` is one).

    from hosts import measure
    run = measure(4, 0.2, 10e9, "bench/scaling.py:train_on_host", {...}, log_dir, backend="dask")
    run["seconds"], run["hosts"]["worker0"]["sent"], run["result"]
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from distlda.test.daskhosts import DaskHostCluster
from distlda.test.hostcluster import HostCluster, HostDaemons, run_client
from distlda.test.hosts import HostNetwork, HostsUnavailable, unavailable

logger = logging.getLogger("bench.hosts")

__all__ = ["BACKENDS", "HostsUnavailable", "host_names", "measure", "role_of", "unavailable"]

CLIENT, SERVER = "client", "server"
BACKENDS = ("pyro", "dask")
"""The clusters :func:`measure` starts: distlda's own Pyro5 daemons, or a Dask scheduler and Dask workers."""


def host_names(workers: int) -> list[str]:
    """The hosts of a W-worker measurement: the client, then (with workers) the server and ``worker0``..."""
    return [CLIENT] if not workers else [CLIENT, SERVER, *(f"worker{i}" for i in range(workers))]


def role_of(host: str) -> str:
    """``client``, ``server`` or ``worker`` (the role a host's figures are grouped by)."""
    return "worker" if host.startswith("worker") else host


def measure(workers: int, cores: float, bandwidth: float, target: str, config: Mapping[str, Any],
            log_dir: Path, worker_args: tuple[str, ...] | None = None, hmac_key: str | None = None,
            backend: str = "pyro", neighbours: int = 0, neighbour_argv: Sequence[str] = (),
            neighbour_ready: str | None = None) -> dict[str, Any]:
    """Train ``target`` once on ``workers`` scaled-down hosts (0: locally, in the client's host).

    Parameters
    ----------
    workers : int
        Worker hosts (each runs one worker of ``backend`` with ``worker_args``).
    cores : float
        CPU quota of every host, in cores.
    bandwidth : float
        Link rate of a real host in bits/s; each simulated link gets ``bandwidth × cores`` each way.
    target : str
        ``module:function`` or ``path/to/file.py:function``, called in the client's host as
        ``function(config, ns_conf, ready)``.
    config : mapping
        JSON-able; passed to the function as it is.
    log_dir : pathlib.Path
        Where the daemons' and the client's output go.
    worker_args : tuple of str, optional
        More arguments of each worker (default: one thread; ``--threads 1`` for ``python -m
        distlda.cluster.worker``, ``--nthreads 1`` for ``dask worker``).
    hmac_key : str, optional
        The Pyro5 cluster's key (default: a random one).
    backend : {"pyro", "dask"}
        The cluster started on the hosts (without workers: none).
    neighbours : int
        With ``workers=0``: the local run's host gets the server's and ``neighbours`` worker hosts beside it, each
        running ``neighbour_argv`` (a load of the workers' kind) throughout, so that the run meets the contention
        for the machine's shared caches and cores that a W-worker run's hosts meet (simulated hosts share them;
        real ones do not).
    neighbour_argv : sequence of str
        The load each neighbour runs until the local run ends.
    neighbour_ready : str, optional
        A line every neighbour prints once it is busy; the local run starts when each has (within 10 minutes).

    Returns
    -------
    dict
        ``result`` (the function's dict), ``seconds`` (wall seconds from ``ready()`` to its return),
        ``hosts`` ({host: {"sent", "received", "cpu"}} over that time), ``workers``, ``cores``,
        ``bandwidth``, ``link_rate`` (bits/s of each simulated link) and ``backend``.

    Raises
    ------
    ValueError
        For a backend not in :data:`BACKENDS`.
    HostsUnavailable
        Where the hosts cannot be made (not root, no cgroups or namespaces); the message says why.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    rate = bandwidth * cores
    if neighbours and (workers or not neighbour_argv):
        raise ValueError("neighbours are for a local run (workers=0), and need neighbour_argv")
    with HostNetwork(host_names(workers or neighbours), cores=cores, rate=rate) as network:
        if not workers:
            loads = [network.hosts[name] for name in network.hosts if role_of(name) == "worker"]
            for host in loads:
                host.popen(list(neighbour_argv), log=log_dir / f"{host.name}.log")
            try:
                if neighbour_ready:
                    _wait_for_lines([log_dir / f"{host.name}.log" for host in loads], neighbour_ready, loads)
                run = run_client(network, CLIENT, target, config, None, log_dir / "client.log")
            finally:
                for host in loads:
                    host.stop()
        else:
            names = [n for n in network.hosts if role_of(n) == "worker"]
            with _cluster(backend, network, names, log_dir, worker_args, hmac_key) as cluster:
                run = run_client(network, CLIENT, target, config, cluster.ns_conf, log_dir / "client.log")
    logger.info("%s, %d workers, %.2f cores, %.3g bit/s links: %.1f s", backend, workers, cores, rate, run["seconds"])
    return {**run, "workers": workers, "cores": cores, "bandwidth": bandwidth, "link_rate": rate, "backend": backend,
            "neighbours": neighbours}


def _wait_for_lines(logs: list[Path], line: str, hosts: list[Any], timeout: float = 600.0) -> None:
    """Wait until each of ``logs`` has ``line`` (RuntimeError naming a host whose process ended, or the timeout)."""
    deadline = time.monotonic() + timeout
    waiting = list(zip(logs, hosts))
    while waiting:
        waiting = [(log, host) for log, host in waiting if line not in log.read_text(errors="replace")]
        ended = [host.name for _, host in waiting if any(p.poll() is not None for p in host.procs)]
        if ended or time.monotonic() > deadline:
            raise RuntimeError(f"the load of {', '.join(ended) or waiting[0][1].name} did not print {line!r} "
                               f"({'it ended' if ended else f'{timeout:.0f} s'}); see {logs[0].parent}")
        if waiting:
            time.sleep(0.2)


def _cluster(backend: str, network: HostNetwork, workers: list[str], log_dir: Path,
             worker_args: tuple[str, ...] | None, hmac_key: str | None) -> HostDaemons:
    """The (not yet started) cluster of ``backend``: its coordinator on the server, a worker on each of ``workers``."""
    if backend == "dask":
        return DaskHostCluster(network, SERVER, workers, log_dir, worker_args=worker_args or ("--nthreads", "1"))
    return HostCluster(network, SERVER, workers, hmac_key or os.urandom(16).hex(), log_dir,
                       worker_args=worker_args or ("--threads", "1"))
