"""What every distlda daemon process shares: a keyed Pyro5 daemon, signals, and the common flags.

Every daemon (name server, dispatcher, worker) serves through :class:`GuardedServer`, Pyro5's
thread-pool server with limits on what a peer may hold before it has proved the key: a
connection that has sent nothing costs a file descriptor and no thread; one that has not
completed the handshake within ``handshake_seconds`` is closed; at most ``per_address``
such connections per peer address and ``total`` in all are kept (a new one pushes out the
oldest, so a flood from one address cannot lock out a client on the same host); accepting
never waits on a peer; and the request loop notices SIGTERM within half a second.
"""

from __future__ import annotations

import argparse
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from Pyro5 import config as pyro_config
from Pyro5.nameserver import NameServerDaemon
from Pyro5.server import Daemon
from Pyro5.svr_threads import ClientConnectionJob, PoolError, SocketServer_Threadpool

from distlda.cluster.auth import CheckedConnection, KeyedDaemonMixin, accept_only_msgpack, configure_pyro
from distlda.cluster.errors import ClusterError
from distlda.cluster.naming import NsConf, Registrar, advertised_host, wait_for_ns

logger = logging.getLogger(__name__)

__all__ = ["KeyedDaemon", "KeyedNameServerDaemon", "PreauthLimits", "GuardedServer", "shut_socket", "prepare_process",
           "serve_until_stopped", "add_cluster_arguments", "add_process_arguments", "limits_of", "setup_logging",
           "start_process", "open_daemon", "register_and_serve", "role_parser", "run_role"]


@dataclass(frozen=True)
class PreauthLimits:
    """What peers that have not proved the key may hold on one daemon.

    Attributes
    ----------
    handshake_seconds : float
        A connection that has not completed the handshake by then is closed.
    per_address : int
        Such connections kept per peer address; a new one closes the oldest.
    total : int
        Such connections kept in all (below Pyro5's 200 threads, so key holders always find one free).
    """

    handshake_seconds: float = 5.0
    per_address: int = 32
    total: int = 128

    def __post_init__(self) -> None:
        if not self.handshake_seconds > 0 or self.per_address < 1 or self.total < 1:
            raise ValueError(f"the handshake deadline and the connection bounds must be positive, got {self}")


class _Peer:
    """A connection the daemon accepted: its socket, where from, and its handshake deadline."""

    __slots__ = ("sock", "addr", "deadline", "stage")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float) -> None:
        self.sock, self.addr, self.deadline = sock, addr, deadline
        self.stage = "waiting"  # no byte yet; then "handshake" (on a thread), then "open" (proved the key)

    @property
    def host(self) -> str:
        return str(self.addr[0]) if isinstance(self.addr, tuple) else str(self.addr)


class _GuardedJob(ClientConnectionJob):
    """Pyro5's connection job, reading through :class:`CheckedConnection` and under the handshake deadline."""

    def __init__(self, peer: _Peer, server: "GuardedServer") -> None:
        # not Pyro5's __init__: it would wrap the socket in a second connection object that closes it when dropped
        self.csock = CheckedConnection(peer.sock)
        self.caddr = peer.addr
        self.daemon = server.daemon
        self.peer, self.server = peer, server

    def __call__(self) -> None:
        try:
            super().__call__()
        finally:
            self.server.forget(self.peer)

    def handleConnection(self) -> bool:  # noqa: N802 - Pyro5's name
        self.csock.settimeout(max(0.001, self.peer.deadline - time.monotonic()))  # no single read outlives it
        shook = super().handleConnection()
        if not self.server.admit(self.peer, shook):
            self.csock.close()
            return False
        self.csock.settimeout(pyro_config.COMMTIMEOUT or None)
        return True


class GuardedServer(SocketServer_Threadpool):
    """Pyro5's thread-pool server with bounds on peers that have not proved the key (see the module).

    Parameters
    ----------
    limits : PreauthLimits
    """

    _ACCEPT_BURST = 16
    """Connections accepted per pass of the loop; at most ``per_address`` so a flood cannot push out a newcomer
    before its first bytes have been looked at."""

    def __init__(self, limits: PreauthLimits) -> None:
        super().__init__()
        self.limits = limits
        self._lock = threading.Lock()
        self._unproved: dict[_Peer, None] = {}  # in the order accepted, oldest first
        self._open: set[_Peer] = set()
        self._closed_early = 0
        self._reported = time.monotonic()

    def init(self, daemon: Any, host: Any, port: Any, unixsocket: Any = None) -> None:
        super().init(daemon, host, port, unixsocket)
        self.sock.setblocking(False)  # accept() never waits
        if hasattr(self.sock, "do_handshake_on_connect"):
            self.sock.do_handshake_on_connect = False  # TLS: the handshake happens on the job's thread, timed

    def events(self, eventsockets: Any) -> None:
        """One pass of the request loop: start the connections that sent bytes, accept new ones, close the late."""
        ready = self._selector.select(pyro_config.POLLTIMEOUT)
        for key, _ in ready:  # first the peers that spoke, so newcomers are served before more are accepted
            if key.fileobj is not self.sock:
                self._start(key.data)
        if any(key.fileobj is self.sock for key, _ in ready):
            self._accept()
        self._expire()

    def _accept(self) -> None:
        for _ in range(min(self._ACCEPT_BURST, self.limits.per_address)):
            try:
                csock, caddr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: make room, try again on the next pass
                logger.warning("cannot accept a connection: %s", exc)
                with self._lock:
                    if self._unproved:
                        self._drop(next(iter(self._unproved)))
                return
            if self.shutting_down:
                csock.close()
                return
            peer = _Peer(csock, caddr, time.monotonic() + self.limits.handshake_seconds)
            self._selector.register(csock, selectors.EVENT_READ, peer)
            with self._lock:
                self._unproved[peer] = None
                self._bound(peer.host)

    def _bound(self, host: str) -> None:
        """Close the oldest unproved connections beyond the bounds (the lock held), those that never sent a byte
        first: a client in the middle of its handshake is not pushed out by idle connections, even from its own
        address."""
        for pool, limit in (([p for p in self._unproved if p.host == host], self.limits.per_address),
                            (list(self._unproved), self.limits.total)):
            excess = len(pool) - limit
            if excess > 0:
                idle_first = sorted(pool, key=lambda p: p.stage != "waiting")  # stable: oldest first within each
                for old in idle_first[:excess]:
                    self._drop(old)

    def _start(self, peer: _Peer) -> None:
        """``peer`` sent its first bytes: a thread of the pool reads its handshake."""
        self._selector.unregister(peer.sock)
        with self._lock:
            if peer not in self._unproved:
                return
            peer.stage = "handshake"
        try:
            self.pool.process(_GuardedJob(peer, self))
        except PoolError as exc:  # every thread busy: refuse this one rather than wait
            logger.warning("refused a connection from %s: %s", peer.host, exc)
            with self._lock:
                self._drop(peer)

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [p for p in self._unproved if p.deadline < now]
            for peer in late:
                self._drop(peer)
            self._report(now)

    def _drop(self, peer: _Peer) -> None:
        """Close a connection that has not proved the key (the lock held); a thread reading it sees it closed."""
        self._unproved.pop(peer, None)
        self._closed_early += 1
        if peer.stage == "waiting":
            try:
                self._selector.unregister(peer.sock)
            except (KeyError, ValueError):
                pass
            peer.sock.close()
        else:
            shut_socket(peer.sock)

    def _report(self, now: float) -> None:
        if self._closed_early and now - self._reported >= 60.0:
            logger.warning("closed %d connections in %.0fs that did not prove the key in time or went beyond %d "
                           "per address", self._closed_early, now - self._reported, self.limits.per_address)
            self._closed_early, self._reported = 0, now

    def admit(self, peer: _Peer, shook: bool) -> bool:
        """Called by the connection's thread after its handshake: whether it may go on to requests."""
        with self._lock:
            if self._unproved.pop(peer, "gone") == "gone":
                return False  # closed meanwhile, by the deadline or the bounds
            if shook:
                peer.stage = "open"
                self._open.add(peer)
            return shook

    def forget(self, peer: _Peer) -> None:
        """The connection's thread is done with it."""
        with self._lock:
            self._unproved.pop(peer, None)
            self._open.discard(peer)

    def close(self) -> None:
        """Close every connection, so that the threads serving them end now, then the server."""
        with self._lock:
            for peer in list(self._unproved):
                self._drop(peer)
            for peer in self._open:
                shut_socket(peer.sock)
        super().close()


def shut_socket(sock: socket.socket) -> None:
    """Shut a socket both ways, so that a thread blocked on it (in recv or accept) returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed already


class _GuardedTransport:
    """Mix into a Pyro5 ``Daemon`` subclass (before it) to serve through :class:`GuardedServer`.

    Pyro5's ``Daemon.__init__`` builds its transport server itself, with no hook to choose another; this
    property hands it a :class:`GuardedServer` in place of the plain thread-pool server before it is started.
    """

    _limits: PreauthLimits = PreauthLimits()

    @property
    def transportServer(self) -> Any:  # noqa: N802 - Pyro5's name
        return self.__dict__.get("_transport")

    @transportServer.setter
    def transportServer(self, server: Any) -> None:  # noqa: N802
        if type(server) is SocketServer_Threadpool:
            server = GuardedServer(self._limits)
        self.__dict__["_transport"] = server


class KeyedDaemon(KeyedDaemonMixin, _GuardedTransport, Daemon):
    """A Pyro5 daemon that requires the cluster key (if any), reads only msgpack, and bounds unproved peers."""

    def __init__(self, key: str | bytes | None = None, limits: PreauthLimits | None = None, **kwargs: Any) -> None:
        self._limits = limits or PreauthLimits()
        super().__init__(**kwargs)
        self.set_key(key)


class KeyedNameServerDaemon(KeyedDaemonMixin, _GuardedTransport, NameServerDaemon):
    """Pyro5's name server behind the same key check and bounds."""

    def __init__(self, key: str | bytes | None = None, limits: PreauthLimits | None = None, **kwargs: Any) -> None:
        self._limits = limits or PreauthLimits()
        super().__init__(**kwargs)
        self.set_key(key)


def prepare_process(max_message_mb: int = 1024) -> None:
    """Pyro5 settings and serializer restrictions for a daemon process (call once, first)."""
    configure_pyro(max_message_mb=max_message_mb)
    accept_only_msgpack()


def serve_until_stopped(daemon: Daemon, stop: threading.Event, on_stop: Callable[[], None] | None = None) -> None:
    """Run ``daemon``'s request loop until ``stop`` is set or SIGTERM/SIGINT arrives; then clean up."""

    def handle(signum: int, frame: Any) -> None:
        logger.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    try:
        daemon.requestLoop(loopCondition=lambda: not stop.is_set())
    finally:
        if on_stop is not None:
            try:
                on_stop()
            except Exception as exc:  # noqa: BLE001 - shutting down anyway
                logger.debug("cleanup failed: %s", exc)
        daemon.close()


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every distlda daemon process, the name server's included: the key, the largest message and
    verbosity."""
    parser.add_argument("--hmac", dest="hmac", default=os.environ.get("DISTLDA_HMAC") or None,
                        help="shared key of the cluster: every connection must prove it "
                             "(default: the DISTLDA_HMAC environment variable)")
    parser.add_argument("--max-message-mb", type=int, default=1024,
                        help="largest message accepted, in MiB (default 1024); larger ones are refused")
    defaults = PreauthLimits()
    parser.add_argument("--handshake-timeout", type=float, default=defaults.handshake_seconds,
                        help="seconds a new connection has to prove the key before it is closed "
                             f"(default {defaults.handshake_seconds:g})")
    parser.add_argument("--max-unauthenticated-per-address", type=int, default=defaults.per_address,
                        help="connections that have not proved the key kept per peer address; a new one closes "
                             f"the oldest (default {defaults.per_address})")
    parser.add_argument("--max-unauthenticated", type=int, default=defaults.total,
                        help=f"such connections kept in all (default {defaults.total})")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)")


def add_cluster_arguments(parser: argparse.ArgumentParser, ns_flags: tuple[str, ...] = ("--host",),
                          port_flags: tuple[str, ...] = ("--port",)) -> None:
    """The flags every daemon that registers takes: where the name server is, its own address, and
    :func:`add_process_arguments`."""
    parser.add_argument(*ns_flags, dest="host", default=None,
                        help="name server address (default: this machine, then broadcast)")
    parser.add_argument(*port_flags, dest="port", type=int, default=None, help="name server port (default 9090)")
    parser.add_argument("--no-broadcast", dest="broadcast", action="store_false",
                        help="do not look for the name server by UDP broadcast")
    parser.add_argument("--bind", default=None,
                        help="address this daemon listens on and advertises (default: this machine's address "
                             "on the route to the name server; 127.0.0.1 when the name server is local)")
    parser.add_argument("--advertise", default=None,
                        help="address to advertise instead of --bind (behind NAT)")
    add_process_arguments(parser)


def limits_of(args: argparse.Namespace) -> PreauthLimits:
    """The :class:`PreauthLimits` of a daemon's command line; ValueError when they are not positive."""
    return PreauthLimits(args.handshake_timeout, args.max_unauthenticated_per_address, args.max_unauthenticated)


def setup_logging(verbosity: int) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


def start_process(parser: argparse.ArgumentParser, argv: Any) -> tuple[argparse.Namespace, NsConf]:
    """Parse a daemon's command line, set up logging and Pyro5; return the arguments and ``ns_conf``."""
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    prepare_process(args.max_message_mb)
    return args, NsConf(args.host, args.port, args.broadcast, args.hmac)


def open_daemon(args: argparse.Namespace, conf: NsConf) -> KeyedDaemon:
    """Wait for the name server, then open this process's daemon on the address the others can reach."""
    wait_for_ns(conf, args.wait)
    host = advertised_host(conf, args.bind)
    return KeyedDaemon(key=args.hmac, limits=limits_of(args), host=host, port=0, nathost=args.advertise)


def register_and_serve(daemon: KeyedDaemon, obj: Any, conf: NsConf, ns_name: str, label: str,
                       object_id: str | None = None) -> int:
    """Register ``obj`` in ``daemon`` and as ``ns_name`` at the name server (kept registered), then serve.

    ``obj.on_exit`` is set to stop serving; the registration is removed at the end. Returns the exit code.
    """
    stop = threading.Event()
    obj.on_exit = stop.set
    uri = daemon.register(obj, object_id)
    if hasattr(obj, "uri"):
        obj.uri = str(uri)
    registrar = Registrar(conf, ns_name, str(uri))
    try:
        registrar.register_now()
    except ClusterError as exc:
        print(f"{label}: {exc}", file=sys.stderr)
        return 1
    registrar.start()
    print(f"distlda {label} {ns_name} at {uri}", flush=True)
    serve_until_stopped(daemon, stop, on_stop=registrar.stop)
    return 0



def role_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line every registered role (dispatcher, worker) shares; the role adds its own flags."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_cluster_arguments(parser)
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the name server at start (default 30)")
    return parser


def run_role(parser: argparse.ArgumentParser, argv: Any, role: str,
             make: Callable[[argparse.Namespace, NsConf], tuple[Any, str, str, str | None]],
             check: Callable[[argparse.Namespace, NsConf], None] | None = None) -> int:
    """Run a registered role's process until ``exit()`` or SIGTERM; returns its exit code.

    Parses ``argv``, sets up logging and Pyro5, calls ``check(args, conf)`` (which raises to refuse to start),
    opens the daemon once the name server answers, then registers and serves the object of
    ``make(args, conf) -> (object, name at the name server, label, object id or None)``. A refusal is printed
    as ``role: reason`` on stderr, with exit code 1.
    """
    args, conf = start_process(parser, argv)
    try:
        if check is not None:
            check(args, conf)
        daemon = open_daemon(args, conf)
    except (ClusterError, OSError, ValueError) as exc:
        print(f"{role}: {exc}", file=sys.stderr)
        return 1
    obj, ns_name, label, object_id = make(args, conf)
    return register_and_serve(daemon, obj, conf, ns_name, label, object_id=object_id)
