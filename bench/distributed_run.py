"""Train ONE configuration of the distributed benchmark in this process and print one JSON line.

``bench/distributed.py`` runs every configuration this way, each in a fresh process:

* ``distlda-1t``: distlda ``LdaModel`` on this process, ``threads=1``;
* ``distlda-1w``, ``distlda-2w``: distlda ``LdaModel(distributed=True)`` on a ``LocalCluster`` of 1 or 2
  workers with one thread each; ``distlda-1w2t``: one worker with two threads (one worker per host,
  using its cores, is how a cluster is meant to be deployed);
* ``distlda-dask-2w``: distlda ``LdaModel(distributed=client)`` on a Dask ``LocalCluster`` of 2 worker
  processes with one thread each (its scheduler runs in this process); the scheduler's and workers' peak
  memory come from :func:`distlda.dask.connect.peak_memory`;
* ``gensim``: gensim ``LdaModel``; ``gensim-multicore-2w``: gensim ``LdaMulticore(workers=2)``;
* ``gensim-dist-2w``: gensim ``LdaModel(distributed=True)`` on gensim's own cluster, set up as its
  documentation says (see :class:`clusters.GensimCluster`).

Clusters are started before the clock starts and always stopped, by PID, afterwards. distlda first
trains a tiny model untimed (on the cluster, for the distributed configurations), so that loading
its compiled kernels is not timed. Only the constructor call that trains the model is timed; for
the distributed configurations it includes connecting to the dispatcher and initialising the
workers. Around it, :class:`clusters.TrafficMeter` records the bytes through the sockets of every
cluster process, their ``/proc/<pid>/io`` counters and the workers' CPU seconds.

    python bench/distributed_run.py --config distlda-2w --docs 4000
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

# this folder's distributed.py would hide Dask's `distributed` package, here and in the worker processes a Dask
# LocalCluster spawns (they take this process's sys.path): the folder is searched last
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from common import (  # noqa: E402 - after the search path is set
    BLAS_ENV_VARS,
    CHUNKSIZE,
    CONFIGS,
    DEFAULT_DATA_DIR,
    DEFAULT_GIBBS_PER_PASS,
    NUM_TOPICS,
    Config,
    DatasetFiles,
)

logger = logging.getLogger("bench.distributed_run")

DATASET = "debian"
BYTES_PER_VALUE = 4  # float32
_SHARED = {c.key: c for c in CONFIGS}
DIST_CONFIGS = (
    _SHARED["distlda-1t"],
    Config("distlda-1w", "distlda-cluster", 1, "distlda distributed, 1 worker"),
    Config("distlda-2w", "distlda-cluster", 2, "distlda distributed, 2 workers"),
    Config("distlda-1w2t", "distlda-cluster", 1, "distlda distributed, 1 worker with 2 threads"),
    Config("distlda-dask-2w", "distlda-dask", 2, "distlda on Dask, 2 workers"),
    _SHARED["gensim"],
    _SHARED["gensim-multicore-2w"],
    Config("gensim-dist-2w", "gensim-cluster", 2, "gensim distributed, 2 workers"),
)
"""The configurations; ``threads`` is the parallel units: threads (local) or workers."""
CONFIG_BY_KEY = {c.key: c for c in DIST_CONFIGS}
THREADS_PER_WORKER = {"distlda-1w2t": 2}
"""Threads of each worker where not one."""
CLUSTER_SYSTEMS = ("distlda-cluster", "distlda-dask", "gensim-cluster")
DAEMON_ROLES = ("dispatcher", "workers")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, choices=list(CONFIG_BY_KEY))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default %(default)s")
    parser.add_argument("--docs", type=int, default=None, help="train on the first N documents (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="model seed (default %(default)s)")
    parser.add_argument("--log-dir", type=Path, default=None, help="cluster logs (default: a new temporary folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages, also in the cluster logs")
    args = parser.parse_args(argv)
    if args.docs is not None and args.docs < 1:
        parser.error("--docs must be at least 1")
    return args


def _prefix(config: Config, full: tuple[Any, dict[int, str]], docs: int | None) -> tuple[Any, dict[int, str]]:
    """The system's input (distlda: BinaryCorpus; gensim: MmCorpus) cut to its first ``docs`` documents."""
    corpus, id2word = full
    if docs is None or docs >= len(corpus):
        return full
    if config.system.startswith("distlda"):
        return corpus.read_range(0, docs), id2word
    from gensim.utils import ClippedCorpus

    return ClippedCorpus(corpus, docs), id2word


def expected_msteps(config: Config, num_docs: int) -> int:
    """M-steps of one pass: gensim's distributed mode and LdaMulticore make one per ``workers`` chunks."""
    chunks_per_mstep = config.threads if config.system in ("gensim-multicore", "gensim-cluster") else 1
    return math.ceil(math.ceil(num_docs / CHUNKSIZE) / chunks_per_mstep)


def _timed(train: Callable[[], Any], roles: dict[str, list[int]] | None) -> tuple[Any, float, dict[str, Any] | None]:
    """Run ``train`` under the clock (and the traffic meter of ``roles``); (model, seconds, traffic)."""
    from clusters import TrafficMeter

    meter = TrafficMeter(roles) if roles else None
    gc.collect()
    if meter:
        meter.start()
    started = time.perf_counter()
    try:
        model = train()
    finally:
        seconds = time.perf_counter() - started
        traffic = meter.stop() if meter else None
    return model, seconds, traffic


def _distlda_worker_states(cluster: Any) -> list[dict[str, Any]]:
    """Every registered distlda worker's getstate(): jobs and documents done, seconds busy, PID."""
    from distlda.cluster.naming import WORKER_PREFIX, answering_proxy, locate_ns

    ns = locate_ns(cluster.conf)
    try:
        uris = ns.list(prefix=WORKER_PREFIX)
    finally:
        ns._pyroRelease()
    states = []
    for uri in uris.values():
        proxy = answering_proxy(str(uri), cluster.hmac_key, 10.0)
        if proxy is not None:
            states.append(dict(proxy.getstate()))
            proxy._pyroRelease()
    return states


def _worker_deltas(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each worker did between two readings of its counters (jobs, documents, seconds busy)."""
    start = {s["id"]: s for s in before}
    return [{"id": s["id"], "pid": s["pid"], "threads": s["threads"],
             **{k: s[k] - start.get(s["id"], {}).get(k, 0) for k in ("jobs_done", "docs_done", "busy_seconds")}}
            for s in after]


def _run_distlda_cluster(config: Config, data: Any, full: Any, settings: Any, log_dir: Path,
                         verbose: bool) -> tuple[Any, float, dict[str, Any], dict[str, Any]]:
    from systems import distlda_model, distlda_warm_up

    from distlda.cluster.local import LocalCluster

    with LocalCluster(workers=config.threads, threads_per_worker=THREADS_PER_WORKER.get(config.key, 1),
                      log_dir=str(log_dir),
                      verbose=int(verbose)) as cluster:
        options = {"distributed": True, "ns_conf": cluster.ns_conf}
        distlda_warm_up(full, settings, **options)
        pids = cluster.pids()
        roles = {"client": [os.getpid()], "nameserver": [pids["nameserver"]], "dispatcher": [pids["dispatcher"]],
                 "workers": list(pids["workers"])}
        before = _distlda_worker_states(cluster)
        model, seconds, traffic = _timed(lambda: distlda_model(*data, settings, settings.passes, **options), roles)
        extra = {"workers_during_training": _worker_deltas(before, _distlda_worker_states(cluster)), "pids": pids}
    return model, seconds, traffic, extra


def _run_distlda_dask(config: Config, data: Any, full: Any, settings: Any, log_dir: Path,
                      verbose: bool) -> tuple[Any, float, dict[str, Any], dict[str, Any]]:
    """As :func:`_run_distlda_cluster`, on a Dask ``LocalCluster`` (``log_dir`` unused: Dask logs to stderr)."""
    from distributed import Client, LocalCluster
    from systems import distlda_model, distlda_warm_up

    from distlda.dask.connect import peak_memory

    with LocalCluster(n_workers=config.threads, threads_per_worker=THREADS_PER_WORKER.get(config.key, 1),
                      processes=True, dashboard_address=None,
                      silence_logs=logging.INFO if verbose else logging.ERROR) as cluster, Client(cluster) as client:
        options = {"distributed": client}
        distlda_warm_up(full, settings, **options)
        workers = sorted(client.run(os.getpid).values())
        # the scheduler of a LocalCluster runs in this process: its sockets and CPU count as the client's
        roles = {"client": [os.getpid()], "workers": workers}
        model, seconds, traffic = _timed(lambda: distlda_model(*data, settings, settings.passes, **options), roles)
        peaks = peak_memory(client)
    scheduler = peaks.pop("scheduler")
    extra = {"pids": {"client": os.getpid(), "workers": workers}, "peak_memory": {"scheduler": scheduler, **peaks},
             "peak_scheduler_bytes": scheduler, "peak_worker_bytes": max(peaks.values(), default=None)}
    return model, seconds, traffic, extra


def _run_gensim_cluster(config: Config, data: Any, full: Any, settings: Any, log_dir: Path,
                        verbose: bool) -> tuple[Any, float, dict[str, Any], dict[str, Any]]:
    from clusters import GensimCluster
    from systems import gensim_model

    with GensimCluster(config.threads, log_dir, verbose=verbose) as cluster:
        roles = {"client": [os.getpid()], **cluster.pids()}
        model, seconds, traffic = _timed(
            lambda: gensim_model(*data, settings, distributed=True, ns_conf=cluster.ns_conf), roles)
        extra = {"pids": cluster.pids(), "pyro_env": cluster.pyro_env()}
    return model, seconds, traffic, extra


def _bytes_figures(config: Config, traffic: dict[str, Any] | None, stats: dict[str, Any],
                   msteps: int, num_terms: int) -> dict[str, Any]:
    """Bytes per M-step: through the daemons' sockets, on the wire, in /proc/<pid>/io, client payload, estimate."""
    dense = NUM_TOPICS * num_terms * config.threads * 2 * BYTES_PER_VALUE
    figures: dict[str, Any] = {"dense_estimate_per_mstep": dense if config.system in CLUSTER_SYSTEMS else None}
    if stats.get("bytes_sent") is not None and config.system in ("distlda-cluster", "distlda-dask"):
        figures["client_payload_per_mstep"] = (stats["bytes_sent"] + stats["bytes_received"]) / max(msteps, 1)
    if traffic is None:
        return figures
    tcp = traffic.get("tcp")
    if tcp is not None:
        # (a Dask run has no dispatcher: its scheduler is in the client's process)
        daemons = sum(tcp[r]["sent"] + tcp[r]["received"] for r in DAEMON_ROLES if r in tcp)
        figures["daemon_socket_bytes_per_mstep"] = daemons / max(msteps, 1)
        figures["wire_bytes_per_mstep"] = sum(v["sent"] for v in tcp.values()) / max(msteps, 1)
    io = [traffic["proc_io"].get(r) for r in DAEMON_ROLES]
    if all(v is not None for v in io):
        figures["daemon_proc_io_bytes_per_mstep"] = sum(io) / max(msteps, 1)
    return figures


def _outside_estep(config: Config, stats: dict[str, Any], seconds: float,
                   traffic: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """Share of wall time outside the E-step, and how it was obtained (None when not measured)."""
    if config.system.startswith("distlda") and config.system != "distlda-dask" and stats.get("wall_seconds"):
        return 1.0 - stats["gamma_seconds"] / (stats["wall_seconds"] * config.threads), "gamma_seconds"
    # (the Dask backend does not time its tasks' E-step: its workers' CPU seconds, as for gensim's cluster)
    if config.system in ("gensim-cluster", "distlda-dask") and traffic and \
            traffic["cpu_seconds"].get("workers") is not None:
        return 1.0 - traffic["cpu_seconds"]["workers"] / (seconds * config.threads), "worker CPU seconds"
    return None, None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, train and measure one configuration; the result as a JSON-ready dict."""
    from systems import SYSTEMS, RunSettings, package_version  # imports numpy: after the BLAS settings

    config = CONFIG_BY_KEY[args.config]
    files = DatasetFiles.of(args.data_dir, DATASET)
    info = files.read_info()
    client_threads = 1 if config.system in CLUSTER_SYSTEMS else config.threads
    settings = RunSettings(1, client_threads, args.seed, DEFAULT_GIBBS_PER_PASS)
    full = SYSTEMS["distlda" if config.system.startswith("distlda") else "gensim"].load(files, settings)
    data = _prefix(config, full, args.docs)
    num_docs = len(data[0]) if hasattr(data[0], "__len__") else data[0].n_docs
    extra: dict[str, Any] = {}
    if config.system in CLUSTER_SYSTEMS:
        log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix=f"bench-{config.key}-"))  # kept if the run fails
        runner = {"distlda-cluster": _run_distlda_cluster, "distlda-dask": _run_distlda_dask,
                  "gensim-cluster": _run_gensim_cluster}[config.system]
        try:
            model, seconds, traffic, extra = runner(config, data, full, settings, log_dir, args.verbose)
        except BaseException:
            logger.error("%s failed; the cluster's logs are in %s", config.key, log_dir)
            raise
        if args.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)
    else:
        system = SYSTEMS[config.system]
        if system.warm_up is not None:
            system.warm_up(full, settings)
        model, seconds, traffic = _timed(lambda: system.train(data, settings), None)
    stats = dict(getattr(model, "training_stats", None) or {})
    msteps = int(stats["msteps"]) if stats.get("msteps") else expected_msteps(config, num_docs)
    share, share_from = _outside_estep(config, stats, seconds, traffic)
    package = "distlda" if config.system.startswith("distlda") else "gensim"
    return {
        "config": config.key, "system": config.system, "units": config.threads, "seed": args.seed,
        "num_docs": num_docs, "num_terms": int(info["num_terms"]), "corpus_docs": int(info["num_train_docs"]),
        "train_seconds": seconds, "docs_per_second": num_docs / seconds, "msteps": msteps,
        "msteps_counted": bool(stats.get("msteps")), "outside_estep_share": share, "outside_estep_from": share_from,
        **_bytes_figures(config, traffic, stats, msteps, int(info["num_terms"])),
        "training_stats": stats, "traffic": traffic, "version": package_version(package),
        **extra,
    }


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM from the parent (a timeout): leave through the finally blocks, which stop the clusters."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the configuration given on the command line and print its JSON line."""
    args = parse_args(argv)
    for name in BLAS_ENV_VARS:  # one BLAS thread in every process: each process is one parallel unit
        os.environ[name] = "1"
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    result = run(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
