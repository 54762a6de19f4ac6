"""Command line of the local cluster (``python -m distlda.cluster`` and ``distlda cluster``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Sequence

from distlda.cli.clusterstate import remove_state, write_state
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
        write_state(cluster.port, pids, str(cluster.log_dir), keyed=args.hmac is not None)
        key = " --hmac KEY" if args.hmac is not None else ""
        print(f"use it with: distlda train PREPARED --cluster 127.0.0.1:{cluster.port}{key} (or --cluster local); "
              f"distlda status --port {cluster.port}{key}", flush=True)
        print("or from Python: LdaModel(corpus, id2word=dictionary, distributed=True, ns_conf="
              f"{ {k: v for k, v in cluster.ns_conf.items() if k != 'hmac_key'}!r})", flush=True)
        print("press Ctrl-C to stop", flush=True)
        reported: set[int] = set()
        while not stop.wait(0.5):
            _report_exits(cluster, reported)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the cluster...", file=sys.stderr, flush=True)
        remove_state()
        cluster.stop()
    return 0


def _report_exits(cluster: LocalCluster, reported: set[int]) -> None:
    """Say once, on standard error, when a process of the cluster has exited, with its log."""
    procs = [("name server", "nameserver", cluster.nameserver), ("dispatcher", "dispatcher", cluster.dispatcher)]
    procs += [(f"worker {i}", f"worker{i}", proc) for i, proc in enumerate(cluster.workers)]
    for label, log, proc in procs:
        if proc is not None and proc.pid not in reported and proc.poll() is not None:
            reported.add(proc.pid)
            print(f"distlda cluster: the {label} (pid {proc.pid}) exited with code {proc.returncode}; its log: "
                  f"{cluster.log_dir / (log + '.log')}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distlda.cluster",
                                     description="Run a whole distlda cluster on this machine (127.0.0.1).")
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return run(parser.parse_args(argv))
