"""A Dask cluster on scaled-down hosts (:mod:`distlda.test.hosts`): the Dask backend where :class:`HostCluster`
runs the Pyro5 one.

:class:`DaskHostCluster` starts a Dask scheduler in the server's host and one Dask worker in each worker host,
every process in its host's cgroup and namespace, and waits (from inside the server's host, the only place that
reaches the scheduler) until every worker has registered. A client in another host gets ``{"scheduler":
"tcp://ADDRESS:PORT"}`` as its ``ns_conf`` from :func:`~distlda.test.hostcluster.run_client`, and
:func:`cluster_kwargs` turns that (or a Pyro5 ``ns_conf``, or None) into the keywords of ``LdaModel``, opening
and closing the ``distributed.Client`` in the client's host.

Each worker is one process, ``dask worker --no-nanny --nthreads 1``: a nanny is a second Python process in the
host's cgroup (its memory and its heartbeats come out of the same small quota, and a Pyro5 worker host has no
such process), and what it adds, restarting a worker that died, is not wanted here: a benchmark or a test must
see a failure, not a worker quietly started again. Without it the PID started is the worker itself, stopped by
that PID. The worker imports ``distlda.models`` at start (``--preload``), so a worker that cannot load distlda
never registers and the import is not part of any timed run; the kernels themselves load in the caller's untimed
warm-up, as on the Pyro5 cluster.

The Dask processes run without TLS or authentication: only the hosts of this network see their bridge.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from distlda.test.hostcluster import HostDaemons
from distlda.test.hosts import HostNetwork

logger = logging.getLogger(__name__)

__all__ = ["DaskHostCluster", "cluster_kwargs"]

SCHEDULER = "scheduler"
"""The key of a Dask ``ns_conf`` (the scheduler's address), and the scheduler daemon's name."""


PROFILER_OFF = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"
"""The environment variable that turns a Dask worker's statistical profiler off (set to ``False``)."""


class DaskHostCluster(HostDaemons):
    """A Dask scheduler on ``server``, one single-process Dask worker on each host of ``workers``.

    Parameters
    ----------
    network : HostNetwork
        Built hosts.
    server : str
        The host of the scheduler.
    workers : sequence of str
        One Dask worker on each of these hosts (a host may be named twice, or be the server's).
    log_dir : pathlib.Path
        Where each process's output goes (and each worker's local directory).
    worker_args : sequence of str
        More arguments of ``dask worker`` (default: one thread, the E-step's).
    port : int
        The scheduler's port.
    startup_timeout : float
        Seconds for the workers to register.
    """

    stopped_last = SCHEDULER

    def __init__(self, network: HostNetwork, server: str, workers: Sequence[str], log_dir: Path,
                 worker_args: Sequence[str] = ("--nthreads", "1"), port: int = 8786,
                 startup_timeout: float = 300.0) -> None:
        super().__init__(network, log_dir, startup_timeout)
        self.server = network[server]
        self.workers = [network[w] for w in workers]
        self.worker_args = list(worker_args)
        self.port = port

    @property
    def address(self) -> str:
        """The scheduler's address, as the hosts reach it."""
        return f"tcp://{self.server.address}:{self.port}"

    @property
    def ns_conf(self) -> dict[str, Any]:
        """What :func:`~distlda.test.hostcluster.run_client` passes to the training function (see
        :func:`cluster_kwargs`)."""
        return {SCHEDULER: self.address}

    def start(self) -> "DaskHostCluster":
        """Start the scheduler and the workers; return once every worker has registered."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # a dashboard would take CPU from the hosts' small quotas, and so would the workers' statistical profiler
        # (a look at every thread's stack every 10 ms: 8% of the time of 8 workers at 0.2 cores, measured), which
        # docs/distributed.md says to turn off for training; a memory limit of 0 turns off Dask's spilling and
        # pausing, which a worker holding one model's arrays never needs
        quiet = ["--no-dashboard"]
        unprofiled = {PROFILER_OFF: "False"}
        try:
            self._daemon(SCHEDULER, self.server, "distributed.cli.dask_scheduler", "--host", self.server.address,
                         "--port", str(self.port), *quiet)
            for i, host in enumerate(self.workers):
                name = f"worker{i}"
                self._daemon(name, host, "distributed.cli.dask_worker", self.address, "--no-nanny",
                             "--host", host.address, "--name", name, "--memory-limit", "0",
                             "--local-directory", str(self.log_dir / name), "--preload", "distlda.models",
                             "--death-timeout", str(int(self.startup_timeout)), *quiet, *self.worker_args,
                             env=unprofiled)
            self._wait_in(self.server, [sys.executable, "-m", "distlda.test.daskhosts", "wait", self.address,
                                        str(len(self.workers)), str(self.startup_timeout)])
        except BaseException:
            self.stop()
            raise
        logger.info("Dask scheduler %s up with %d workers", self.address, len(self.workers))
        return self


@contextlib.contextmanager
def cluster_kwargs(ns_conf: Mapping[str, Any] | None, timeout: float = 60.0) -> Iterator[dict[str, Any]]:
    """The ``LdaModel`` keywords for a client on a host: ``{}`` for None (train locally), ``distributed=True``
    with a Pyro5 ``ns_conf``, ``distributed=<distributed.Client>`` with a Dask one (``{"scheduler": address}``,
    :attr:`DaskHostCluster.ns_conf`); the Dask client is closed at the end of the ``with`` block."""
    if ns_conf is None:
        yield {}
    elif SCHEDULER not in ns_conf:
        yield {"distributed": True, "ns_conf": dict(ns_conf)}
    else:
        from distributed import Client

        # the default client, as a user's `Client(address)` is: parts of distributed (its `wait`) look for that one
        with Client(ns_conf[SCHEDULER], timeout=timeout) as client:
            yield {"distributed": client}


def _wait_main(address: str, workers: str, timeout: str) -> int:
    """Wait until the scheduler at ``address`` has ``workers`` workers; 0 when it has, 1 after ``timeout`` s."""
    from distributed import Client

    deadline = time.monotonic() + float(timeout)
    try:
        with Client(address, timeout=float(timeout), set_as_default=False) as client:
            client.wait_for_workers(int(workers), timeout=max(1.0, deadline - time.monotonic()))
    except (OSError, TimeoutError) as exc:
        logger.error("the Dask scheduler at %s did not get %s workers: %s", address, workers, exc)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    command, *rest = sys.argv[1:] or ["?"]
    if command != "wait" or len(rest) != 3:
        sys.exit("usage: python -m distlda.test.daskhosts wait ADDRESS WORKERS TIMEOUT")
    sys.exit(_wait_main(*rest))
