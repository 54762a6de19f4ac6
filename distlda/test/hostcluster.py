"""A distlda cluster on scaled-down hosts (:mod:`distlda.test.hosts`), and a client run on one of them.

:class:`HostCluster` starts the name server and the dispatcher on one host and one worker on each
of the others, every daemon in its host's cgroup and namespace, and waits until they are
registered (:class:`distlda.test.daskhosts.DaskHostCluster` does the same for a Dask scheduler
and Dask workers; both are :class:`HostDaemons`). :func:`run_client` runs a training function in
the client's host and meters it: it calls ``function(config, ns_conf, ready)`` there, where the
function calls ``ready()`` once its untimed warm-up is done; the meters (bytes through every
host's link, CPU seconds of every host) are read at that moment and when the function returns,
so the figures hold the timed part only.

The host processes cannot reach this process's network (the hosts see only their bridge), so
every wait for the cluster runs inside a host: ``python -m distlda.test.hostcluster wait ...``.
Every process on the hosts starts in its log's directory, not in the caller's: ``python -m``
puts its working directory first on ``sys.path``, where a file like ``bench/distributed.py``
would hide the package of that name from a Dask worker or client.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from distlda.test.hosts import Host, HostNetwork, stop_processes

logger = logging.getLogger(__name__)

__all__ = ["HostCluster", "HostDaemons", "read_meters", "run_client"]

_READY, _RESULT = "distlda-hosts: ready", "distlda-hosts: result "


class HostDaemons(abc.ABC):
    """Daemons on scaled-down hosts, each one process kept by its PID and stopped by it: the base of
    :class:`HostCluster` and :class:`distlda.test.daskhosts.DaskHostCluster`.

    A subclass starts its daemons with :meth:`_daemon` in :meth:`start` and waits for them with :meth:`_wait_in`;
    :meth:`stop` (also on a failed start and at the end of a ``with`` block) stops them all, the one named
    :attr:`stopped_last` (the daemon the others report to) after the others.

    Parameters
    ----------
    network : HostNetwork
        Built hosts.
    log_dir : pathlib.Path
        Where each daemon's output goes.
    startup_timeout : float
        Seconds for the daemons to come up.
    """

    stopped_last = ""
    """The name of the daemon stopped once the others are gone."""

    def __init__(self, network: HostNetwork, log_dir: Path, startup_timeout: float = 300.0) -> None:
        self.network = network
        self.log_dir = Path(log_dir)
        self.startup_timeout = startup_timeout
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    @abc.abstractmethod
    def ns_conf(self) -> dict[str, Any]:
        """What a training function in a host gets from :func:`run_client` to reach this cluster."""

    @abc.abstractmethod
    def start(self) -> "HostDaemons":
        """Start the daemons and wait until they are up; stop those started when that fails."""

    def _daemon(self, name: str, host: Host, module: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        """Run ``python -m module args`` in ``host`` as the daemon ``name``."""
        env = {**(env or {}), "DISTLDA_PARENT_PID": str(os.getpid()),
               "DISTLDA_PDEATHSIG": "1" if threading.current_thread() is threading.main_thread() else "0"}
        # through cluster.local's runner, so that a daemon stops when this process dies, even by SIGKILL
        self.procs[name] = host.popen([sys.executable, "-m", "distlda.cluster.local", module, *args],
                                      log=self.log_dir / f"{name}.log", env=env, cwd=self.log_dir)

    def _wait_in(self, host: Host, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Run the waiter ``argv`` in ``host`` until it exits; RuntimeError (with the daemons' logs) when a daemon
        exits first or the waiter fails (it exits with 1 when its condition did not hold in time)."""
        waiter = host.popen(list(argv), log=self.log_dir / "wait.log", env=dict(env or {}), cwd=self.log_dir)
        while waiter.poll() is None:
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead:
                waiter.kill()
                waiter.wait()
                raise RuntimeError(f"{', '.join(dead)} exited while starting the cluster:\n{self.tail_logs()}")
            time.sleep(0.2)
        if waiter.returncode != 0:
            raise RuntimeError(f"the cluster did not come up within {self.startup_timeout:.0f} s:\n"
                               f"{self.tail_logs()}")

    def tail_logs(self, lines: int = 15) -> str:
        """The last lines of every daemon's log."""
        return "\n".join(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                         for path in sorted(self.log_dir.glob("*.log")))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every daemon but :attr:`stopped_last`, then it; SIGKILL what lingers; reap all."""
        groups = [[p for n, p in self.procs.items() if n != self.stopped_last],
                  [p for n, p in self.procs.items() if n == self.stopped_last]]
        for group in groups:
            stop_processes(group, timeout)
        self.procs.clear()

    def __enter__(self) -> "HostDaemons":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class HostCluster(HostDaemons):
    """Name server and dispatcher on ``server``, one worker on each host of ``workers``.

    Parameters
    ----------
    network : HostNetwork
        Built hosts.
    server : str
        The host of the name server and the dispatcher.
    workers : sequence of str
        One worker on each of these hosts.
    hmac_key : str
        The cluster's shared key (given to the daemons by environment).
    worker_args : sequence of str
        More arguments of ``python -m distlda.cluster.worker`` (default: one E-step thread).
    log_dir : pathlib.Path
        Where each daemon's output goes.
    port : int
        The name server's port.
    startup_timeout : float
        Seconds for the daemons to register.
    """

    stopped_last = "nameserver"

    def __init__(self, network: HostNetwork, server: str, workers: Sequence[str], hmac_key: str, log_dir: Path,
                 worker_args: Sequence[str] = ("--threads", "1"), port: int = 9090,
                 startup_timeout: float = 300.0) -> None:
        super().__init__(network, log_dir, startup_timeout)
        self.server = network[server]
        self.workers = [network[w] for w in workers]
        self.hmac_key = hmac_key
        self.worker_args = list(worker_args)
        self.port = port

    @property
    def ns_conf(self) -> dict[str, Any]:
        """What a client on one of the hosts passes as ``LdaModel(..., ns_conf=...)``."""
        return {"host": self.server.address, "port": self.port, "broadcast": False, "hmac_key": self.hmac_key}

    def start(self) -> "HostCluster":
        """Start the name server, the workers, then the dispatcher, each group once the previous is registered."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        where = ["--host", self.server.address, "--port", str(self.port), "--no-broadcast"]
        key = {"DISTLDA_HMAC": self.hmac_key}
        try:
            self._daemon("nameserver", self.server, "distlda.cluster.nameserver", "-n", self.server.address,
                         "-p", str(self.port), "--no-broadcast", env=key)
            for i, host in enumerate(self.workers):
                self._daemon(f"worker{i}", host, "distlda.cluster.worker", *where, *self.worker_args, env=key)
            self._wait(len(self.workers), dispatcher=False)
            self._daemon("dispatcher", self.server, "distlda.cluster.dispatcher", *where, env=key)
            self._wait(len(self.workers), dispatcher=True)
        except BaseException:
            self.stop()
            raise
        logger.info("cluster up on %d worker hosts: %s", len(self.workers), self.ns_conf["host"])
        return self

    def _wait(self, workers: int, dispatcher: bool) -> None:
        """Wait, from inside the server's host, until ``workers`` workers (and the dispatcher) are registered."""
        self._wait_in(self.server, [sys.executable, "-m", "distlda.test.hostcluster", "wait", self.server.address,
                                    str(self.port), str(workers), str(int(dispatcher)), str(self.startup_timeout)],
                      env={"DISTLDA_HMAC": self.hmac_key})


def read_meters(network: HostNetwork) -> dict[str, dict[str, float]]:
    """Per host: bytes ``sent`` and ``received`` through its link, and ``cpu`` seconds (None without a cgroup)."""
    meters: dict[str, dict[str, Any]] = {}
    for name, host in network.hosts.items():
        meters[name] = {**host.link_bytes(), "cpu": host.cpu_seconds() if host.cores is not None else None}
    return meters


def _difference(after: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {host: {key: None if value is None else value - before[host][key] for key, value in meters.items()}
            for host, meters in after.items()}


def run_client(network: HostNetwork, host: str, target: str, config: Mapping[str, Any],
               ns_conf: Mapping[str, Any] | None, log: Path, timeout: float = 7200.0) -> dict[str, Any]:
    """Run ``target`` (``module:function`` or ``path/to/file.py:function``) in ``host`` and meter its timed part.

    The function is called there as ``function(config, ns_conf, ready)`` and returns a JSON-able dict; it
    calls ``ready()`` once (after its warm-up). Returns ``{"result": <its dict>, "seconds": <wall seconds from
    ready() to its return>, "hosts": <read_meters() difference over that time>}``.

    Raises
    ------
    RuntimeError
        When the client exits without a result (its log's end is in the message).
    """
    with open(log, "ab") as errors:
        proc = network[host].popen([sys.executable, "-m", "distlda.test.hostcluster", "client", _absolute(target)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   cwd=Path(log).resolve().parent)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"config": dict(config), "ns_conf": ns_conf}) + "\n")
        proc.stdin.flush()
        before, started, result = None, 0.0, None
        for line in proc.stdout:
            if line.startswith(_READY):
                before, started = read_meters(network), time.perf_counter()
                proc.stdin.write("go\n")
                proc.stdin.flush()
            elif line.startswith(_RESULT):
                seconds, after = time.perf_counter() - started, read_meters(network)
                result = json.loads(line[len(_RESULT):])
            else:
                logger.info("%s: %s", host, line.rstrip())
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None or before is None:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"the client in host {host} exited with code {proc.returncode} without a result:\n{tail}")
    return {"result": result, "seconds": seconds, "hosts": _difference(after, before)}


def _absolute(target: str) -> str:
    """``target`` with its file's path made absolute (the client starts in another directory)."""
    where, _, name = target.rpartition(":")
    return f"{Path(where).resolve()}:{name}" if where.endswith(".py") else target


def _load(target: str) -> Callable[..., dict[str, Any]]:
    where, _, name = target.rpartition(":")
    if where.endswith(".py"):
        # a script's neighbours, as `python script` has, but after the installed packages: bench/distributed.py
        # must not hide Dask's `distributed`
        sys.path.append(str(Path(where).resolve().parent))
        spec = importlib.util.spec_from_file_location(Path(where).stem, where)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {where}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def _client_main(target: str) -> int:
    given = json.loads(sys.stdin.readline())
    asked = []

    def ready() -> None:
        if asked:
            raise RuntimeError("ready() was called twice")
        asked.append(True)
        sys.stdout.write(_READY + "\n")
        sys.stdout.flush()
        sys.stdin.readline()

    result = _load(target)(given["config"], given["ns_conf"], ready)
    if not asked:
        raise RuntimeError(f"{target} returned without calling ready()")
    sys.stdout.write(_RESULT + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def _wait_main(host: str, port: str, workers: str, dispatcher: str, timeout: str) -> int:
    from distlda.cluster.errors import ClusterError
    from distlda.cluster.naming import DISPATCHER_NAME, WORKER_PREFIX, NsConf, locate_ns

    conf = NsConf.from_mapping({"host": host, "port": int(port), "broadcast": False,
                                "hmac_key": os.environ.get("DISTLDA_HMAC")})
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            with locate_ns(conf, timeout=2.0) as ns:
                names = set(ns.list())
            if sum(n.startswith(WORKER_PREFIX) for n in names) >= int(workers) and (
                    dispatcher == "0" or DISPATCHER_NAME in names):
                return 0
        except ClusterError:
            pass
        time.sleep(0.2)
    return 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    command, *rest = sys.argv[1:] or ["?"]
    mains: dict[str, Callable[..., int]] = {"client": _client_main, "wait": _wait_main}
    if command not in mains:
        sys.exit("usage: python -m distlda.test.hostcluster client TARGET | wait HOST PORT WORKERS DISPATCHER TIMEOUT")
    sys.exit(mains[command](*rest))
