"""The cluster's name server: ``python -m distlda.nameserver [-n HOST] [-p PORT] [--hmac KEY]``.

It is Pyro5's name server behind distlda's key check and msgpack-only wire.
Workers and the dispatcher register with it; clients find the dispatcher through it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Sequence

from Pyro5.nameserver import BroadcastServer

from distlda.cluster.daemon import (
    KeyedNameServerDaemon,
    add_process_arguments,
    limits_of,
    prepare_process,
    serve_until_stopped,
    setup_logging,
)
from distlda.cluster.naming import DEFAULT_NS_PORT

logger = logging.getLogger(__name__)

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distlda.nameserver",
                                     description="Run the name server of a distlda cluster.")
    parser.add_argument("-n", "--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; use this machine's address, or 0.0.0.0, "
                             "for a cluster of several machines)")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_NS_PORT, help="port (default 9090)")
    parser.add_argument("--no-broadcast", dest="broadcast", action="store_false",
                        help="do not answer UDP broadcast lookups")
    add_process_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the name server and serve until SIGTERM/SIGINT."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    prepare_process(args.max_message_mb)
    try:
        limits = limits_of(args)
    except ValueError as exc:
        print(f"distlda.nameserver: {exc}", file=sys.stderr)
        return 1
    try:
        daemon = KeyedNameServerDaemon(key=args.hmac, limits=limits, host=args.host, port=args.port)
    except OSError as exc:
        print(f"distlda.nameserver: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    bcserver = None
    host = daemon.sock.getsockname()[0]
    if args.broadcast and not host.startswith("127."):
        try:
            bcserver = BroadcastServer(daemon.uriFor(daemon.nameserver, nat=False))
            bcserver.runInThread()
        except OSError as exc:
            logger.warning("no broadcast responder (%s); clients need --host", exc)
    print(f"distlda name server on {daemon.locationStr}{' (key required)' if args.hmac else ''}", flush=True)
    try:
        serve_until_stopped(daemon, threading.Event())
    finally:
        if bcserver is not None:
            bcserver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
