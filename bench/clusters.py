"""What the distributed benchmark needs around a cluster: gensim's cluster, and meters of its processes.

* :class:`GensimCluster` starts gensim's distributed mode on 127.0.0.1 as gensim's documentation
  describes it (a Pyro4 name server, ``python -m gensim.models.lda_worker`` processes, one
  ``python -m gensim.models.lda_dispatcher``, with pickle as Pyro4's serializer) and stops every
  process it started, by PID.
* :class:`TrafficMeter` measures, between ``start()`` and ``stop()``, the bytes each process sent
  and received through TCP sockets (the kernel's per-socket ``tcp_info`` counters, read with
  ``ss -tinp``), its ``rchar + wchar`` from ``/proc/<pid>/io``, and its CPU seconds.

``rchar``/``wchar`` count only ``read``/``write``-style system calls: the ``send``/``recv``
calls through which Pyro moves its messages do not reach them (checked on Linux 6.x: 10 MB sent
with ``sendall`` add nothing to ``wchar``), so the socket counters are the measure of the network
bytes, and the ``/proc/<pid>/io`` figures are recorded to show that.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from distlda.cluster.local import _wait_or_kill, free_port

logger = logging.getLogger("bench.clusters")

HOST = "127.0.0.1"
GENSIM_WORKER_PREFIX = "gensim.lda_worker"
GENSIM_DISPATCHER_NAME = "gensim.lda_dispatcher"

_OWNER = re.compile(r"pid=(\d+),fd=(\d+)")
_SENT = re.compile(r"\bbytes_sent:(\d+)")
_RECEIVED = re.compile(r"\bbytes_received:(\d+)")

SocketKey = tuple[int, int, str, str]


def tcp_sockets(pids: set[int]) -> dict[SocketKey, tuple[int, int]]:
    """Bytes sent and received so far by each TCP socket of ``pids``: {(pid, fd, local, peer): (sent, received)}.

    Raises OSError or subprocess.CalledProcessError when ``ss`` (iproute2) cannot be run.
    """
    text = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout
    found: dict[SocketKey, tuple[int, int]] = {}
    for record in re.split(r"\n(?=\S)", text):  # a socket's line, then its indented tcp_info line
        head = record.split()
        owners = [(int(p), int(f)) for p, f in _OWNER.findall(record) if int(p) in pids]
        if len(head) < 5 or not owners:
            continue
        sent, received = _SENT.search(record), _RECEIVED.search(record)
        found[(*owners[0], head[3], head[4])] = (int(sent.group(1)) if sent else 0,
                                                  int(received.group(1)) if received else 0)
    return found


def proc_io_bytes(pid: int) -> int | None:
    """``rchar + wchar`` of a process (``/proc/<pid>/io``); None when it cannot be read."""
    try:
        fields = dict(line.split(": ", 1) for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return int(fields["rchar"]) + int(fields["wchar"])
    except (OSError, KeyError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process (``/proc/<pid>/stat``); None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _sum_over(pids: list[int], read: Callable[[int], Any]) -> Any:
    values = [read(pid) for pid in pids]
    return None if any(v is None for v in values) else sum(values)


class TrafficMeter:
    """Bytes and CPU seconds of groups of processes between :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    roles : dict of str to list of int
        PIDs by role (``client``, ``nameserver``, ``dispatcher``, ``workers``).
    interval : float
        Seconds between two readings of the socket counters while the meter runs, so that a
        connection closed before :meth:`stop` still counts up to its last reading.
    """

    def __init__(self, roles: dict[str, list[int]], interval: float = 2.0) -> None:
        self.roles = {role: [int(p) for p in pids] for role, pids in roles.items()}
        self.interval = interval
        self._pids = {pid for pids in self.roles.values() for pid in pids}
        self._first: dict[SocketKey, tuple[int, int]] = {}
        self._latest: dict[SocketKey, tuple[int, int]] = {}
        self._tcp_error: str | None = None
        self._io: dict[str, Any] = {}
        self._cpu: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read_sockets(self) -> dict[SocketKey, tuple[int, int]]:
        if self._tcp_error is not None:
            return {}
        try:
            return tcp_sockets(self._pids)
        except (OSError, subprocess.CalledProcessError) as exc:
            self._tcp_error = f"cannot read the socket counters with `ss -tinp`: {exc}"
            return {}

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._latest.update(self._read_sockets())

    def start(self) -> None:
        """Take the first readings and start sampling."""
        self._io = {role: _sum_over(pids, proc_io_bytes) for role, pids in self.roles.items()}
        self._cpu = {role: _sum_over(pids, cpu_seconds) for role, pids in self.roles.items()}
        self._first = self._read_sockets()
        self._latest = dict(self._first)
        self._thread = threading.Thread(target=self._sample, name="traffic-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        """Stop sampling; what each role sent and received, its /proc/<pid>/io bytes and CPU seconds since start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._latest.update(self._read_sockets())
        io = {role: _sum_over(pids, proc_io_bytes) for role, pids in self.roles.items()}
        cpu = {role: _sum_over(pids, cpu_seconds) for role, pids in self.roles.items()}
        tcp: dict[str, dict[str, int]] | None = None
        if self._tcp_error is None:
            tcp = {role: {"sent": 0, "received": 0} for role in self.roles}
            role_of = {pid: role for role, pids in self.roles.items() for pid in pids}
            for key, (sent, received) in self._latest.items():
                sent0, received0 = self._first.get(key, (0, 0))
                tcp[role_of[key[0]]]["sent"] += sent - sent0
                tcp[role_of[key[0]]]["received"] += received - received0
        return {"tcp": tcp, "tcp_error": self._tcp_error, "sockets": len(self._latest),
                "proc_io": {r: None if io[r] is None or self._io[r] is None else io[r] - self._io[r] for r in io},
                "cpu_seconds": {r: None if cpu[r] is None or self._cpu[r] is None else cpu[r] - self._cpu[r]
                                for r in cpu}}


class GensimCluster:
    """gensim's distributed LDA on 127.0.0.1: a Pyro4 name server, ``workers`` workers and a dispatcher.

    Started as gensim's documentation describes, with Pyro4 told to use pickle
    (``PYRO_SERIALIZERS_ACCEPTED`` and ``PYRO_SERIALIZER``) and where the name server is
    (``PYRO_NS_HOST``/``PYRO_NS_PORT``: gensim's daemons bind the address from which they reach it).
    The same variables are set in this process, whose ``LdaModel`` is the client.

    Parameters
    ----------
    workers : int
        Number of ``gensim.models.lda_worker`` processes.
    log_dir : pathlib.Path
        Where each process's output goes.
    verbose : bool
        Start the worker and dispatcher with ``-v`` (INFO messages in their logs).
    startup_timeout : float
        Seconds to wait for each process to register at the name server.
    """

    def __init__(self, workers: int, log_dir: Path, verbose: bool = False, startup_timeout: float = 120.0) -> None:
        self.n_workers = workers
        self.log_dir = Path(log_dir)
        self.verbose = verbose
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.nameserver: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.dispatcher: subprocess.Popen | None = None
        self._logs: list[Any] = []

    def pyro_env(self) -> dict[str, str]:
        """The environment gensim's distributed mode needs (client and daemons)."""
        return {"PYRO_SERIALIZERS_ACCEPTED": "pickle", "PYRO_SERIALIZER": "pickle", "PYRO_NS_HOST": HOST,
                "PYRO_NS_PORT": str(self.port)}

    @property
    def ns_conf(self) -> dict[str, Any]:
        """What to pass as gensim ``LdaModel(..., ns_conf=...)``."""
        return {"host": HOST, "port": self.port, "broadcast": False}

    def pids(self) -> dict[str, list[int]]:
        """PIDs of the processes started, by role."""
        return {"nameserver": [self.nameserver.pid] if self.nameserver else [],
                "dispatcher": [self.dispatcher.pid] if self.dispatcher else [],
                "workers": [p.pid for p in self.workers]}

    def _spawn(self, name: str, module: str, *args: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self._logs.append(log)
        command = [sys.executable, "-m", module, *args]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
                                start_new_session=True)
        logger.info("started %s (pid %d): %s", name, proc.pid, " ".join(command))
        return proc

    def _names(self, prefix: str) -> dict[str, str]:
        """Names registered at the name server under ``prefix`` ({} while it does not answer)."""
        import Pyro4

        try:
            with Pyro4.locateNS(HOST, self.port, broadcast=False) as ns:
                return dict(ns.list(prefix=prefix))
        except (Pyro4.errors.PyroError, OSError):
            return {}

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            for proc in [self.nameserver, *self.workers, self.dispatcher]:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"a gensim cluster process (pid {proc.pid}) exited with code "
                                       f"{proc.returncode} while waiting for {what}:\n{self.tail_logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not register within {self.startup_timeout:.0f}s:\n{self.tail_logs()}")
            time.sleep(0.2)

    def start(self) -> "GensimCluster":
        """Start the name server, the workers, then the dispatcher, each once the previous ones answer."""
        os.environ.update(self.pyro_env())  # before Pyro4 is imported, in this process and the children
        try:
            self.nameserver = self._spawn("nameserver", "Pyro4.naming", "-n", HOST, "-p", str(self.port), "--nobc")
            self._wait(lambda: bool(self._names("Pyro.NameServer")), "the Pyro4 name server")
            daemon_args = ["--host", HOST, "--port", str(self.port), "--no-broadcast"]
            daemon_args += ["-v"] if self.verbose else []
            for i in range(self.n_workers):
                self.workers.append(self._spawn(f"worker{i}", "gensim.models.lda_worker", *daemon_args))
            self._wait(lambda: len(self._names(GENSIM_WORKER_PREFIX)) >= self.n_workers, f"{self.n_workers} workers")
            self.dispatcher = self._spawn("dispatcher", "gensim.models.lda_dispatcher", *daemon_args)
            self._wait(lambda: GENSIM_DISPATCHER_NAME in self._names(GENSIM_DISPATCHER_NAME), "the dispatcher")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process started (the name server last), SIGKILL those still running after ``timeout``."""
        for group in ([self.dispatcher, *self.workers], [self.nameserver]):
            procs = [p for p in group if p is not None]
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in procs:
                _wait_or_kill(proc, deadline)
        for log in self._logs:
            log.close()
        self._logs = []

    def tail_logs(self, lines: int = 15) -> str:
        """The last lines of every process log."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def __enter__(self) -> "GensimCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
