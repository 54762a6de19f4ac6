"""A whole cluster on this machine: name server, workers and dispatcher as processes on 127.0.0.1.

For a laptop and for tests::

    with LocalCluster(workers=2) as cluster:
        model = LdaModel(corpus, id2word=dictionary, distributed=True, ns_conf=cluster.ns_conf)

or from a shell: ``python -m distlda.cluster --workers 2`` (Ctrl-C stops everything).
Processes are started with the current Python, their output goes to log files,
and :meth:`LocalCluster.stop` stops each of them by PID, killing those that do
not exit in time.

The processes die with the one that started them, even when it is killed
(SIGKILL, or SIGHUP from a closed terminal leaves no chance to clean up): each
is started through :func:`run_child`, which asks Linux to send it SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``) and also watches its parent's PID, for
other systems and for a cluster started from a thread other than the main one
(Linux sends that signal when the *thread* that started the child ends).
"""

from __future__ import annotations

import ctypes
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from Pyro5 import errors as pyro_errors

from distlda.cluster.auth import KeyedProxy, configure_pyro
from distlda.cluster.errors import ClusterError, ClusterTimeout
from distlda.cluster.naming import DISPATCHER_NAME, WORKER_PREFIX, NsConf, answering_proxy, locate_ns, lookup_uri

logger = logging.getLogger(__name__)

__all__ = ["LocalCluster", "free_port", "run_child"]

HOST = "127.0.0.1"

_PARENT_ENV = "DISTLDA_PARENT_PID"
_PDEATHSIG_ENV = "DISTLDA_PDEATHSIG"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_ORPHAN_GRACE = 15.0
"""Seconds an orphaned child has to stop cleanly after SIGTERM before it exits regardless."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """Name server, ``workers`` workers and a dispatcher on 127.0.0.1, started and stopped together.

    Parameters
    ----------
    workers : int
        Number of worker processes.
    hmac_key : str, optional
        Shared key; every process and client must prove it.
    threads_per_worker : int, optional
        E-step threads of each worker (default: the cores divided among the workers).
    port : int, optional
        Name server port (default: a free one).
    maxsize : int
        The dispatcher's job queue size.
    log_dir : str, optional
        Where process logs go (default: a new temporary folder).
    verbose : int
        Log level of the processes (0 warnings, 1 info, 2 debug).
    startup_timeout : float
        Seconds to wait for every process to register.
    heartbeat : float
        Seconds between the dispatcher's liveness checks of the workers.
    """

    def __init__(self, workers: int = 2, hmac_key: str | None = None, threads_per_worker: int | None = None,
                 port: int | None = None, maxsize: int = 10, log_dir: str | None = None, verbose: int = 0,
                 startup_timeout: float = 120.0, heartbeat: float = 1.0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.n_workers = workers
        self.hmac_key = hmac_key
        cores = os.cpu_count() or 1
        self.threads_per_worker = threads_per_worker or max(1, cores // max(workers, 1))
        self.port = port or free_port()
        self.maxsize = maxsize
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="distlda-cluster-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)  # a folder named by the caller may not exist yet
        self.verbose = verbose
        self.startup_timeout = startup_timeout
        self.heartbeat = heartbeat
        self.nameserver: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.dispatcher: subprocess.Popen | None = None
        self._logs: list[Any] = []

    @property
    def ns_conf(self) -> dict[str, Any]:
        """What to pass as ``LdaModel(..., ns_conf=...)``."""
        return {"host": HOST, "port": self.port, "broadcast": False, "hmac_key": self.hmac_key}

    @property
    def conf(self) -> NsConf:
        return NsConf.from_mapping(self.ns_conf)

    def pids(self) -> dict[str, Any]:
        """PIDs of the processes this cluster started."""
        return {"nameserver": self.nameserver.pid if self.nameserver else None,
                "workers": [p.pid for p in self.workers],
                "dispatcher": self.dispatcher.pid if self.dispatcher else None}

    # --------------------------------------------------------------- start

    def _spawn(self, name: str, module: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        self._logs.append(log)
        env = dict(os.environ)
        if self.hmac_key:
            env["DISTLDA_HMAC"] = self.hmac_key  # by environment, not on the command line that ps shows
        env[_PARENT_ENV] = str(os.getpid())
        # the death signal follows the thread that forks; only the main thread lives as long as this process
        env[_PDEATHSIG_ENV] = "1" if threading.current_thread() is threading.main_thread() else "0"
        verbosity = ["-" + "v" * self.verbose] if self.verbose else []
        cmd = [sys.executable, "-m", "distlda.cluster.local", module, *args, *verbosity]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        logger.info("started %s (pid %d): %s", name, proc.pid, " ".join(cmd))
        return proc

    def _cluster_args(self) -> list[str]:
        return ["--host", HOST, "--port", str(self.port), "--no-broadcast", "--bind", HOST]

    def start(self) -> "LocalCluster":
        """Start every process and wait until each is registered; on failure stop them all and raise."""
        configure_pyro()
        try:
            self.start_nameserver()
            for _ in range(self.n_workers):
                self.add_worker(wait=False)
            self._wait(lambda: len(self.registered_workers()) >= self.n_workers, f"{self.n_workers} workers",
                       self.workers)
            self.start_dispatcher()
        except BaseException:
            self.stop()
            raise
        logger.info("local cluster up: %s", self.ns_conf)
        return self

    def start_nameserver(self) -> subprocess.Popen:
        """Start the name server (again, after it died) on this cluster's port."""
        self.nameserver = self._spawn("nameserver", "distlda.cluster.nameserver", "-n", HOST, "-p", str(self.port),
                                      "--no-broadcast")
        self._wait(self._ns_answers, "the name server", [self.nameserver])
        return self.nameserver

    def start_dispatcher(self) -> subprocess.Popen:
        """Start the dispatcher (again, after it died) and wait until it answers."""
        self.dispatcher = self._spawn("dispatcher", "distlda.cluster.dispatcher", *self._cluster_args(),
                                      "--maxsize", str(self.maxsize), "--heartbeat", str(self.heartbeat))
        self._wait(self._dispatcher_answers, "the dispatcher", [self.dispatcher])
        return self.dispatcher

    def add_worker(self, wait: bool = True) -> subprocess.Popen:
        """Start one more worker; with ``wait``, return once it is registered."""
        before = self.registered_workers() if wait else set()
        proc = self._spawn(f"worker{len(self.workers)}", "distlda.cluster.worker", *self._cluster_args(),
                           "--threads", str(self.threads_per_worker))
        self.workers.append(proc)
        if wait:
            self._wait(lambda: bool(self.registered_workers() - before), "the new worker", [proc])
        return proc

    def _wait(self, ready: Any, what: str, procs: list[subprocess.Popen]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            for proc in procs:
                if proc.poll() is not None:
                    raise ClusterError(f"a cluster process (pid {proc.pid}) exited with code {proc.returncode} "
                                       f"while waiting for {what}; logs in {self.log_dir}:\n{self.tail_logs()}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise ClusterTimeout(f"{what} did not come up within {self.startup_timeout:.0f}s; logs in "
                                     f"{self.log_dir}:\n{self.tail_logs()}")
            time.sleep(0.1)

    def tail_logs(self, lines: int = 15) -> str:
        """The last lines of every process log."""
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def _ns_answers(self) -> bool:
        try:
            with locate_ns(self.conf, timeout=2.0):
                return True
        except ClusterError:
            return False

    def registered_workers(self) -> set[str]:
        """Names of the workers currently registered at the name server."""
        try:
            with locate_ns(self.conf, timeout=2.0) as ns:
                return set(ns.list(prefix=WORKER_PREFIX))
        except ClusterError:
            return set()

    def _dispatcher(self, timeout: float) -> KeyedProxy | None:
        """A proxy of the registered dispatcher if it answers, else None."""
        try:
            uri = lookup_uri(self.conf, DISPATCHER_NAME, timeout=timeout)
            return answering_proxy(uri, self.hmac_key, timeout) if uri else None
        except (ClusterError, pyro_errors.PyroError, OSError):
            return None

    def _dispatcher_answers(self) -> bool:
        proxy = self._dispatcher(2.0)
        if proxy is None:
            return False
        with proxy:
            return True

    # ---------------------------------------------------------------- stop

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the dispatcher to stop everything, then stop by PID whatever is still running."""
        if self.dispatcher is not None and self.dispatcher.poll() is None:
            proxy = self._dispatcher(5.0)
            if proxy is not None:
                with proxy:
                    try:
                        proxy.exit()
                    except pyro_errors.PyroError as exc:  # fall back to signals below
                        logger.debug("dispatcher exit() failed: %s", exc)
        # Whatever exit() did not stop (workers the dispatcher never met, a dead dispatcher): SIGTERM by PID,
        # the name server last so the others can still unregister.
        for group in ([self.dispatcher, *self.workers], [self.nameserver]):
            procs = [p for p in group if p is not None]
            deadline = time.monotonic() + 0.5
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                _wait_or_kill(proc, time.monotonic() + timeout)
        for log in self._logs:
            log.close()
        self._logs = []

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _wait_or_kill(proc: subprocess.Popen, deadline: float) -> None:
    """Wait for ``proc`` until ``deadline``, then SIGKILL it; always reap it."""
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        logger.warning("process %d did not stop in time: killing it", proc.pid)
        proc.kill()
        proc.wait()


def _die_with_parent() -> None:
    """Make this process (a child started by :class:`LocalCluster`) stop when its parent dies."""
    parent = int(os.environ.pop(_PARENT_ENV, "0") or 0)
    use_signal = os.environ.pop(_PDEATHSIG_ENV, "0") == "1"
    if not parent:
        return
    if use_signal and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                logger.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            logger.debug("no prctl here (%s): watching the parent only", exc)
    if os.getppid() != parent:  # it died before the signal was asked for
        sys.exit(f"the process that started this one (pid {parent}) is gone")

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        logger.warning("the process that started this one (pid %d) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler stops it cleanly...
        time.sleep(_ORPHAN_GRACE)
        os._exit(1)  # ...unless it cannot, and then it must not linger

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_child(argv: list[str]) -> None:
    """Run ``python -m argv[0] argv[1:]`` in this process, stopping when the parent process dies (see the module).

    This is how :class:`LocalCluster` starts its processes: ``python -m distlda.cluster.local MODULE ARGS...``.
    """
    if not argv:
        raise SystemExit("usage: python -m distlda.cluster.local MODULE [ARGS...]")
    _die_with_parent()
    sys.argv = [argv[0], *argv[1:]]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    run_child(sys.argv[1:])
