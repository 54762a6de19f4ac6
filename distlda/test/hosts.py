"""Scaled-down hosts on one Linux machine: a CPU quota of c cores and a link of bandwidth × c each.

A machine with two cores cannot hold eight real hosts, but it can hold eight slow ones. Each
simulated :class:`Host` is

* a CPU cgroup whose quota is ``cores`` of a core (cgroup v1: the ``cpu`` controller's
  ``cpu.cfs_quota_us`` over a ``cpu.cfs_period_us`` of 10 ms, with a ``cpuacct`` group beside it
  to count the CPU time; cgroup v2: ``cpu.max``), and
* a network namespace with one address on a private bridge, its link shaped by ``tc tbf`` on
  both ends of its veth pair (the host's end limits what it sends, the bridge's end what it
  receives).

When compute and network both slow down by the same factor c, their ratio is that of real hosts,
so speed-ups measured against one thread under the same quota are those of a real cluster (see
``docs/scaling.md``). The bridge lives in a namespace of its own, so nothing is added to the
machine's own network. :class:`HostNetwork` makes the hosts and removes every cgroup, namespace
and process it made on :meth:`~HostNetwork.close`: at the end of a ``with`` block, at exit, on
SIGINT/SIGTERM, and on a failure half-way through building. Every name starts with
``dlhost<pid>-``; a new network first removes what a process that no longer exists left
(``remove_stale``). :class:`HostCluster` runs a distlda cluster on such hosts.

Used by ``tests/test_hosts.py``, ``tests/test_multihost.py`` and ``bench/scaling.py`` (through
``bench/hosts.py``). Needs root, iproute2 (``ip``, ``tc``) and a cgroup hierarchy with the ``cpu``
controller; :func:`unavailable` says which is missing, and :class:`HostsUnavailable` carries that
reason.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Sequence

from distlda.io.container import process_alive

logger = logging.getLogger(__name__)

__all__ = ["Host", "HostNetwork", "HostsUnavailable", "remove_stale", "stop_processes", "unavailable"]

PREFIX = "dlhost"
"""Every namespace and cgroup this module makes is named ``<PREFIX><pid of the maker>-<host>``."""
PERIOD_US = 10_000
CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where cgroup v1 mounts one hierarchy per controller (``cpu``, ``cpuacct``), or where the v2 tree is."""
_DEVICE = "eth0"  # the host's end of its veth pair, inside its own namespace, so the name never clashes
_BRIDGE = "br0"
_NAME = re.compile(rf"^{PREFIX}(\d+)-")


class HostsUnavailable(RuntimeError):
    """Scaled-down hosts cannot be made here; the message says why."""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise HostsUnavailable(f"`{shlex.join(args)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass(frozen=True)
class _Cgroups:
    """Where the CPU controller lives: cgroup v1 (``cpu`` + ``cpuacct`` hierarchies) or v2 (one tree)."""

    version: int
    cpu: Path
    acct: Path

    @classmethod
    def find(cls) -> "_Cgroups | str":
        """The hierarchy to use, or the reason there is none."""
        v1 = CGROUP_ROOT / "cpu"
        if (v1 / "cpu.cfs_quota_us").exists():
            acct = CGROUP_ROOT / "cpuacct"
            return cls(1, v1, acct if (acct / "cpuacct.usage").exists() else v1)
        controllers = CGROUP_ROOT / "cgroup.controllers"
        if controllers.exists():
            if "cpu" not in controllers.read_text().split():
                return f"cgroup v2 at {CGROUP_ROOT} has no cpu controller"
            return cls(2, CGROUP_ROOT, CGROUP_ROOT)
        return f"no cgroup hierarchy with the cpu controller (looked for {v1} and {controllers})"

    def dirs(self, name: str) -> list[Path]:
        return sorted({self.cpu / name, self.acct / name})

    def make(self, name: str, cores: float) -> None:
        if self.version == 2:
            subtree = self.cpu / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
        for path in self.dirs(name):
            path.mkdir()
        quota = max(1000, round(cores * PERIOD_US))  # the kernel refuses quotas under 1 ms
        # The quota caps a host; the weight (8x the default) makes sure it also gets its quota on a machine
        # busy with other work, where a group of the default weight counts as one task among many.
        if self.version == 1:
            (self.cpu / name / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.cpu / name / "cpu.cfs_quota_us").write_text(str(quota))
            (self.cpu / name / "cpu.shares").write_text("8192")
        else:
            (self.cpu / name / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (self.cpu / name / "cpu.weight").write_text("800")

    def usage(self, name: str) -> float:
        """CPU seconds used by the group so far."""
        if self.version == 1:
            return int((self.acct / name / "cpuacct.usage").read_text()) / 1e9
        fields = dict(line.split() for line in (self.cpu / name / "cpu.stat").read_text().splitlines())
        return int(fields["usage_usec"]) / 1e6

    def remove(self, name: str, timeout: float = 10.0) -> None:
        """Kill what is still in the group (only this module's processes are put there) and remove it."""
        for path in self.dirs(name):
            deadline = time.monotonic() + timeout
            while path.exists():
                pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    path.rmdir()
                except OSError as exc:  # busy until the killed processes are gone
                    if time.monotonic() > deadline:
                        logger.warning("could not remove cgroup %s: %s", path, exc)
                        break
                    time.sleep(0.05)

    def names(self) -> set[str]:
        return {p.name for root in {self.cpu, self.acct} for p in root.iterdir() if _NAME.match(p.name)}


def unavailable() -> str | None:
    """None when scaled-down hosts can be made here, else the reason they cannot."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces and cgroups are Linux's; this is {sys.platform}"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"iproute2's `{tool}` is not installed"
    if os.geteuid() != 0:
        return "making network namespaces and cgroups needs root"
    found = _Cgroups.find()
    if isinstance(found, str):
        return found
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    _run("ip", "netns", "delete", probe, check=False)
    try:
        found.make(probe, 0.5)
    except OSError as exc:
        return f"cannot make a cgroup under {found.cpu}: {exc}"
    found.remove(probe)
    return None


def remove_stale() -> list[str]:
    """Remove the namespaces and cgroups of runs whose process is gone (crashed, SIGKILLed); their names."""
    found = _Cgroups.find()
    listed = _run("ip", "-j", "netns", "list", check=False).stdout.strip()
    netns = {entry["name"] for entry in json.loads(listed or "[]")}
    cgroups = found.names() if isinstance(found, _Cgroups) else set()
    stale = sorted(n for n in netns | cgroups if (m := _NAME.match(n)) and not process_alive(int(m.group(1))))
    for name in stale:
        if name in cgroups:
            found.remove(name)  # type: ignore[union-attr]
        if name in netns:
            _run("ip", "netns", "delete", name, check=False)
    if stale:
        logger.warning("removed leftovers of an earlier run: %s", ", ".join(stale))
    return stale


@dataclass
class Host:
    """One scaled-down host: a network namespace with ``address``, and (with ``cores``) a CPU cgroup.

    Attributes
    ----------
    name : str
        Its name in this network (``client``, ``worker0``...).
    address : str
        Its IPv4 address on the bridge.
    cores : float or None
        CPU quota in cores; None: no cgroup, the machine's cores.
    rate : float or None
        Link rate in bits/s each way; None: the veth's own speed.
    netns : str
        The namespace's name (also the cgroup's).
    cgroup_tree : object or None
        The cgroup hierarchy its cgroup is in (set by :class:`HostNetwork`; None: no cgroup).
    procs : list of subprocess.Popen
        The processes started here by :meth:`popen`, stopped by :meth:`stop`.
    """

    name: str
    address: str
    cores: float | None
    rate: float | None
    netns: str
    cgroup_tree: _Cgroups | None = field(default=None, repr=False)
    procs: list[subprocess.Popen] = field(default_factory=list, repr=False)

    def popen(self, argv: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` in this host: in its cgroup (joined before ``ip netns exec``, which mounts its own
        /sys) and its namespace. Its output goes to ``log`` unless ``kwargs`` say otherwise. The PID is the
        program's: the shell and ``ip`` exec it."""
        join = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}"
                           for d in (self.cgroup_tree.dirs(self.netns) if self.cgroup_tree else []))
        script = f"{join} && exec \"$@\"" if join else "exec \"$@\""
        command = ["sh", "-c", script, "sh", "ip", "netns", "exec", self.netns, *argv]
        out = open(log, "ab") if log is not None else None
        try:
            if out is not None:
                kwargs.setdefault("stdout", out)
                kwargs.setdefault("stderr", subprocess.STDOUT)
            proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, start_new_session=True, **kwargs)
        finally:
            if out is not None:
                out.close()
        self.procs.append(proc)
        logger.info("%s: started pid %d: %s", self.name, proc.pid, shlex.join(argv))
        return proc

    def cpu_seconds(self) -> float:
        """CPU seconds used by this host's processes so far (from its cgroup)."""
        if self.cgroup_tree is None:
            raise ValueError(f"host {self.name} has no cgroup (it was made without a CPU quota)")
        return self.cgroup_tree.usage(self.netns)

    def link_bytes(self) -> dict[str, int]:
        """Bytes this host has sent and received through its link so far (its veth's counters)."""
        shown = _run("ip", "-n", self.netns, "-s", "-j", "link", "show", "dev", _DEVICE).stdout
        stats = json.loads(shown)[0]["stats64"]
        return {"sent": int(stats["tx"]["bytes"]), "received": int(stats["rx"]["bytes"])}

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process started here, SIGKILL those still running after ``timeout``; reap them."""
        stop_processes(self.procs, timeout)
        self.procs.clear()


def stop_processes(procs: Sequence[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGTERM each of ``procs`` still running, SIGKILL those still running ``timeout`` seconds later; reap all."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tbf(netns: str, device: str, rate: float) -> list[str]:
    """``tc`` arguments that limit ``device`` in ``netns`` to ``rate`` bits/s. The bucket holds 2 ms of the
    rate (at least 64 KiB, so that one segment of a veth's 64 KiB offloads fits) and the queue 20 ms."""
    burst = max(64 * 1024, int(rate / 8 * 0.002))
    return ["tc", "-n", netns, "qdisc", "replace", "dev", device, "root", "tbf", "rate", f"{int(rate)}bit",
            "burst", str(burst), "latency", "20ms"]


class HostNetwork:
    """Scaled-down hosts on a private bridge; a context manager that removes everything it made.

    Parameters
    ----------
    names : sequence of str
        The hosts, in address order (``10.<subnet>.0.1``, ``.2``...).
    cores : float or None
        Each host's CPU quota in cores (None: no cgroups).
    rate : float or None
        Each host's link rate in bits/s, each way (None: not shaped).
    subnet : int
        Second octet of the private 10.x.0.0/16 subnet; only hosts of this network see it.

    Raises
    ------
    HostsUnavailable
        From :meth:`build` (or ``with``), naming why the hosts cannot be made here.
    """

    def __init__(self, names: Sequence[str], cores: float | None = None, rate: float | None = None,
                 subnet: int = 213) -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"host names must be distinct and at least one, got {list(names)}")
        if cores is not None and cores <= 0 or rate is not None and rate <= 0:
            raise ValueError(f"cores and rate must be positive, got {cores} and {rate}")
        self.tag = f"{PREFIX}{os.getpid()}-"
        self.hub = f"{self.tag}hub"
        self.hosts = {name: Host(name, f"10.{subnet}.0.{i + 1}", cores, rate, f"{self.tag}{i}")
                      for i, name in enumerate(names)}
        self._cgroups: _Cgroups | None = None
        self._made: list[str] = []
        self._handlers: dict[int, Any] = {}
        self._closed = True

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def build(self) -> "HostNetwork":
        """Make the bridge, the hosts, their cgroups and shaping; on any failure remove what was made and raise
        :class:`HostsUnavailable`."""
        reason = unavailable()
        if reason:
            raise HostsUnavailable(reason)
        remove_stale()
        self._closed = False
        atexit.register(self.close)
        self._catch_signals()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def _make(self) -> None:
        needs_cgroups = any(h.cores is not None for h in self.hosts.values())
        if needs_cgroups:
            found = _Cgroups.find()
            assert isinstance(found, _Cgroups)  # unavailable() checked it
            self._cgroups = found
        self._add_netns(self.hub)
        _run("ip", "-n", self.hub, "link", "add", _BRIDGE, "type", "bridge")
        _run("ip", "-n", self.hub, "link", "set", _BRIDGE, "up")
        for i, host in enumerate(self.hosts.values()):
            self._add_netns(host.netns)
            port = f"h{i}"
            _run("ip", "-n", host.netns, "link", "set", "lo", "up")
            _run("ip", "link", "add", _DEVICE, "netns", host.netns, "type", "veth", "peer", "name", port,
                 "netns", self.hub)
            _run("ip", "-n", host.netns, "addr", "add", f"{host.address}/16", "dev", _DEVICE)
            _run("ip", "-n", host.netns, "link", "set", _DEVICE, "up")
            _run("ip", "-n", self.hub, "link", "set", port, "master", _BRIDGE)
            _run("ip", "-n", self.hub, "link", "set", port, "up")
            if host.rate is not None:
                _run(*_tbf(host.netns, _DEVICE, host.rate))  # what the host sends
                _run(*_tbf(self.hub, port, host.rate))  # what it receives
            if host.cores is not None and self._cgroups is not None:
                self._cgroups.make(host.netns, host.cores)
                host.cgroup_tree = self._cgroups
        logger.info("made %d hosts (%s cores, %s bit/s each): %s", len(self.hosts), self._first("cores"),
                    self._first("rate"), ", ".join(f"{h.name}={h.address}" for h in self.hosts.values()))

    def _first(self, what: str) -> Any:
        return getattr(next(iter(self.hosts.values())), what)

    def _add_netns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self._made.append(name)

    def _catch_signals(self) -> None:
        """Clean up on SIGINT/SIGTERM, then let the signal do what it did before (only from the main thread,
        the one Python lets set handlers; a signal this process ignores stays ignored)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous != signal.SIG_IGN:
                self._handlers[signum] = previous
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._handlers.get(signum, signal.SIG_DFL)
        logger.warning("signal %d: removing the scaled-down hosts", signum)
        self.close()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def close(self) -> None:
        """Stop every process started on the hosts, remove their cgroups and namespaces (with the veths and the
        bridge); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for host in self.hosts.values():
            host.stop()
        if self._cgroups is not None:
            for host in self.hosts.values():
                if host.cgroup_tree is not None:
                    self._cgroups.remove(host.netns)
                    host.cgroup_tree = None
        for name in reversed(self._made):
            _run("ip", "netns", "delete", name, check=False)  # deletes its veth ends, and the bridge with the hub
        self._made.clear()
        atexit.unregister(self.close)
        for signum, previous in self._handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._handlers.clear()
        logger.info("removed the scaled-down hosts %s*", self.tag)

    def leftovers(self) -> list[str]:
        """Namespaces and cgroups of this network that still exist (empty after :meth:`close`)."""
        listed = _run("ip", "-j", "netns", "list", check=False).stdout.strip()
        names = {entry["name"] for entry in json.loads(listed or "[]")}
        found = _Cgroups.find()
        if isinstance(found, _Cgroups):
            names |= found.names()
        return sorted(n for n in names if n.startswith(self.tag))

    def __enter__(self) -> "HostNetwork":
        return self.build()

    def __exit__(self, *exc: Any) -> None:
        self.close()

