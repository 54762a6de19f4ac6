"""What every distlda daemon process shares: a keyed Pyro5 daemon, signals, and the common flags."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable

from Pyro5.nameserver import NameServerDaemon
from Pyro5.server import Daemon

from distlda.cluster.auth import KeyedDaemonMixin, accept_only_msgpack, configure_pyro
from distlda.cluster.errors import ClusterError
from distlda.cluster.naming import NsConf, Registrar, advertised_host, wait_for_ns

logger = logging.getLogger(__name__)

__all__ = ["KeyedDaemon", "KeyedNameServerDaemon", "prepare_process", "serve_until_stopped",
           "add_cluster_arguments", "add_process_arguments", "setup_logging", "start_process", "open_daemon", "register_and_serve",
           "role_parser", "run_role"]


class KeyedDaemon(KeyedDaemonMixin, Daemon):
    """A Pyro5 daemon that requires the cluster key (if any) and reads only msgpack."""

    def __init__(self, key: str | bytes | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_key(key)


class KeyedNameServerDaemon(KeyedDaemonMixin, NameServerDaemon):
    """Pyro5's name server behind the same key check."""

    def __init__(self, key: str | bytes | None = None, **kwargs: Any) -> None:
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
    return KeyedDaemon(key=args.hmac, host=host, port=0, nathost=args.advertise)


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
