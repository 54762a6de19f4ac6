"""Command line of the local cluster (``python -m distlda.cluster`` and ``distlda cluster``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Sequence

from distlda.cluster.errors import ClusterError
from distlda.cluster.local import LocalCluster

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the local cluster command."""
    parser.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    parser.add_argument("--hmac", default=None, help="shared key every process and client must prove")
    parser.add_argument("--port", type=int, default=None, help="name server port (default: a free port)")
    parser.add_argument("--threads", type=int, default=None,
                        help="E-step threads per worker (default: the cores divided among the workers)")
    parser.add_argument("--maxsize", type=int, default=10, help="the dispatcher's job queue size (default 10)")


def run(args: Any) -> int:
    """Start the cluster, print its ns_conf, and stop it on Ctrl-C, SIGTERM or SIGHUP (its terminal closed).

    The processes also die with this one if it is killed outright (see :mod:`distlda.cluster.local`).
    """
    stop = threading.Event()
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
    try:
        cluster = LocalCluster(workers=args.workers, hmac_key=args.hmac, threads_per_worker=args.threads,
                               port=args.port, maxsize=args.maxsize, verbose=getattr(args, "verbose", 0) or 0)
        cluster.start()
    except (ClusterError, ValueError, OSError) as exc:
        print(f"distlda cluster: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"local cluster running: name server on 127.0.0.1:{cluster.port}, {args.workers} workers, "
              f"logs in {cluster.log_dir}", flush=True)
        pids = cluster.pids()
        print(f"pids: name server {pids['nameserver']}, workers {' '.join(map(str, pids['workers']))}, "
              f"dispatcher {pids['dispatcher']}", flush=True)
        print("use it with: LdaModel(corpus, id2word=dictionary, distributed=True, ns_conf="
              f"{cluster.ns_conf!r})", flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the cluster...", file=sys.stderr, flush=True)
        cluster.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distlda.cluster",
                                     description="Run a whole distlda cluster on this machine (127.0.0.1).")
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return run(parser.parse_args(argv))
