"""``distlda status``: a cluster's workers, jobs and speed, from its dispatcher."""

from __future__ import annotations

import argparse
from typing import Any

from distlda.cli.clusterstate import read_state
from distlda.cli.common import CliError, emit
from distlda.cli import human

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show a cluster's workers, jobs and speed",
                       description="Ask a cluster's dispatcher for its workers (with the time since each was last "
                                   "heard from), the jobs queued and done, and documents per second.")
    ns = p.add_argument_group("the cluster's name server")
    ns.add_argument("--host", default=None, help="its address (default: the local cluster's, or 127.0.0.1)")
    ns.add_argument("--port", type=int, default=None,
                    help="its port (default: the running `distlda cluster`'s, else 9090)")
    ns.add_argument("--hmac", default=None, help="the cluster's key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distlda.cluster.auth import configure_pyro
    from distlda.cluster.errors import ClusterError
    from distlda.cluster.naming import WORKER_PREFIX, NsConf, find_dispatcher, locate_ns

    configure_pyro()
    if args.host is None and args.port is None:
        state = read_state()  # a `distlda cluster` of this user, running here
        args.host, args.port = (state["host"], state["port"]) if state else ("127.0.0.1", 9090)
    args.host = args.host or "127.0.0.1"
    args.port = 9090 if args.port is None else args.port
    conf = NsConf(args.host, args.port, False, args.hmac)
    try:
        with find_dispatcher(conf, timeout=10.0) as dispatcher:
            status = dispatcher.status()
        with locate_ns(conf) as ns:
            registered = sorted(ns.list(prefix=WORKER_PREFIX))
    except ClusterError as exc:
        raise CliError(f"no cluster answers at {args.host}:{args.port}: {str(exc).split('; ')[0]} (start one with "
                       "`distlda cluster`, or give --host/--port of its name server)") from None
    in_use = {w["name"]: w for w in status["workers"]}
    emit(f"dispatcher at {args.host}:{args.port}: {len(registered)} workers registered, {len(in_use)} in use; "
         f"{status['jobs_queued']} jobs queued, {human.count(status['jobs_done'])} jobs and "
         f"{human.count(status['docs_done'])} documents done, {human.count(status['docs_per_second'])} docs/s over "
         f"{human.duration(status['uptime_seconds'])}")
    names = sorted(set(registered) | set(in_use))
    if names:
        emit(f"{'worker':<32} {'jobs':>8} {'documents':>10} {'in hand':>8} {'last heard':>11}")
        for name in names:
            w = in_use.get(name)
            if w is None:
                emit(f"{name:<32} {'-':>8} {'-':>10} {'-':>8} {'not used yet':>11}")
            else:
                emit(f"{name:<32} {human.count(w['jobs_done']):>8} {human.count(w['docs_done']):>10} "
                     f"{w['jobs_in_hand']:>8} {human.duration(w['seconds_since_seen']) + ' ago':>11}")
    return 0
