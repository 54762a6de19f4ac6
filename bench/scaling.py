"""Scaling on scaled-down hosts: 1, 2, 4 and 8 workers against one local thread under the same CPU quota.

Every simulated host (``bench/hosts.py``, ``distlda.test.hosts``) is a CPU cgroup of c cores
(default 0.2) and a network namespace whose link is shaped to bandwidth × c, so compute and
network slow down together and speed-ups are those of real hosts. The client and the server
(name server + dispatcher) get hosts of their own; each worker gets one (``--threads 1``). The
baseline is one local thread in a host of the same quota. A synthetic corpus (default 1,000,000
documents, K = 100, V = 10,000) is written as a binary corpus that the workers read themselves
(jobs are document ranges); one pass, mini-batches of ``chunksize=2000, update_every=8``.

For links of 10 Gbit/s × c and 1 Gbit/s × c it reports, per W, the seconds, the speed-up over the
baseline measured in the same run, the bytes per M-step through each host role's link (its veth's
counters), the CPU seconds of each role (its cgroup), and whether the model equals the baseline's
bitwise. The report goes between ``<!-- scaling:begin -->`` and ``<!-- scaling:end -->`` of
``docs/scaling.md`` (with the full million documents only); the raw figures to
``bench/results/scaling-<time>.json``. Needs root (cgroups, namespaces, ``tc``): elsewhere it stops
and says why.

    sudo python bench/scaling.py                        # 1,000,000 documents: about 20 minutes on 2 cores
    sudo python bench/scaling.py --docs 50000           # a quick look: prints the section
    sudo python bench/scaling.py --workers 8 --bandwidths 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from common import write_marked_section
from compare import machine
from hosts import HostsUnavailable, measure, role_of, unavailable

logger = logging.getLogger("bench.scaling")

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"
TOPICS, TERMS, DOC_LENGTH, CHUNKSIZE, UPDATE_EVERY = 100, 10_000, 50, 2000, 8
FULL_DOCS = 1_000_000
INIT = "gensim"
"""The random start: the anchor-word start (the default) is computed by the client alone, before the first
mini-batch, the same in the baseline and on a cluster; this benchmark times the passes, which the hosts share."""
ROLES = ("client", "server", "worker")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=FULL_DOCS, help="documents (default 1,000,000)")
    parser.add_argument("--cores", type=float, default=0.2, help="CPU quota of every host, in cores (default 0.2)")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts (default %(default)s)")
    parser.add_argument("--bandwidths", default="10,1",
                        help="link rates of the real hosts in Gbit/s, each scaled by --cores (default %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scaling.md",
                        help="Markdown file whose section is written (only with the full million documents)")
    parser.add_argument("--json-out", type=Path, default=None, help="raw results (default bench/results/...)")
    parser.add_argument("--render", type=Path, default=None,
                        help="run nothing: write the section again from this results file")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.bandwidths = [float(b) for b in args.bandwidths.split(",") if b.strip()]
    if args.docs < CHUNKSIZE or not 0 < args.cores <= 1 or min(args.workers, default=0) < 1 or not args.bandwidths:
        parser.error("need --docs >= 2000, 0 < --cores <= 1, workers >= 1 and at least one bandwidth")
    return args


def train_on_host(config: dict[str, Any], ns_conf: dict[str, Any] | None,
                  ready: Callable[[], None]) -> dict[str, Any]:
    """Runs in the client's host (see ``bench/hosts.py``): an untimed warm-up on one chunk (the kernels load
    in this process and in every worker), ``ready()``, then one timed pass; saves the statistics to
    ``config["save"]``."""
    from distlda.corpora.binary import BinaryCorpus
    from distlda.datasets.synthetic import synthetic_id2word
    from distlda.models import LdaModel

    corpus = BinaryCorpus(config["corpus"])
    params = dict(id2word=synthetic_id2word(TERMS), num_topics=TOPICS, chunksize=CHUNKSIZE,
                  update_every=UPDATE_EVERY, passes=1, random_state=0, eval_every=0, alpha=1.0 / TOPICS,
                  eta=1.0 / TOPICS, init=INIT)
    where = {"distributed": True, "ns_conf": ns_conf} if ns_conf else {"threads": 1}
    LdaModel(corpus.read_range(0, CHUNKSIZE), **params, **where)
    ready()
    started = time.perf_counter()
    model = LdaModel(corpus, **params, **where)
    seconds = time.perf_counter() - started
    np.save(config["save"], model.state.sstats)
    stats = model.training_stats or {}
    return {"seconds": seconds, "msteps": int(stats.get("msteps", 0)), "docs": corpus.num_docs}


def by_role(run: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per role: bytes (sent + received) per M-step and CPU seconds of one host (workers: their mean)."""
    msteps = max(1, run["result"]["msteps"])
    roles: dict[str, dict[str, float | None]] = {}
    for role in ROLES:
        hosts = [m for name, m in run["hosts"].items() if role_of(name) == role]
        if hosts:
            cpu = [m["cpu"] for m in hosts]
            roles[role] = {"bytes_per_mstep": sum(m["sent"] + m["received"] for m in hosts) / len(hosts) / msteps,
                           "cpu": None if None in cpu else sum(cpu) / len(cpu)}
    return roles


def one_run(workers: int, bandwidth: float, args: argparse.Namespace, workdir: Path,
            baseline: Path | None) -> dict[str, Any]:
    """Measure one configuration; with ``baseline`` also compare its model with the baseline's, bitwise."""
    name = f"w{workers}-{bandwidth:g}g"
    save = workdir / f"{name}.npy"
    run = measure(workers, args.cores, bandwidth * 1e9, f"{Path(__file__).resolve()}:train_on_host",
                  {"corpus": str(workdir / "corpus"), "save": str(save)}, workdir / "logs" / name)
    run["roles"] = by_role(run)
    if baseline is not None:
        run["same_model"] = bool(np.array_equal(np.load(save), np.load(baseline)))
    logger.info("%s: %.1f s (timed in the client: %.1f s)%s", name, run["seconds"], run["result"]["seconds"],
                "" if baseline is None else f", same model: {run['same_model']}")
    return run


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value / 1e6:.2f}"


def _cpu(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _busy(cpu: float | None, cores: float, seconds: float) -> str:
    return "—" if cpu is None else f"{cpu / (cores * seconds):.0%}"


def render(report: dict[str, Any]) -> str:
    base = report["baseline"]
    base_seconds = base["result"]["seconds"]
    cores = report["cores"]
    lines = [
        "## Measured on scaled-down hosts",
        "",
        f"Written by `python bench/scaling.py` on {report['date']} (git {report['machine']['git']}); "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}). Every host is a CPU cgroup of "
        f"{cores:g} cores and a network namespace whose link is shaped to bandwidth × {cores:g} each way "
        f"(`bench/hosts.py`); the client and the server (name server + dispatcher) have hosts of their own, each "
        f"worker one (`--threads 1`). A synthetic corpus of {report['docs']:,} documents, {TERMS:,} terms and "
        f"{report['nnz']:,} non-zeros from {TOPICS} topics, read by the workers from a binary corpus (jobs are "
        f"document ranges); one pass, K = {TOPICS}, `chunksize={CHUNKSIZE}, update_every={UPDATE_EVERY}` "
        f"({base['result']['msteps']} M-steps), gensim's random start (`init='{INIT}'`: the timed part is the pass, "
        "which the hosts share; the anchor-word start is the client's alone). The baseline is one local thread in a host of the same quota: "
        f"{base_seconds:.1f} s ({report['docs'] / base_seconds:,.0f} documents/s, "
        f"{_cpu(base['hosts']['client']['cpu'])} CPU seconds).",
        "",
        "| link (real host) | workers | seconds | vs 1 local thread | MB per M-step: client | server "
        "| each worker | CPU s: client | server | each worker | busy: server | each worker | model = baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for run in report["runs"]:
        roles = run["roles"]
        seconds = run["result"]["seconds"]
        lines.append(
            f"| {run['bandwidth'] / 1e9:g} Gbit/s | {run['workers']} | {seconds:.1f} | {base_seconds / seconds:.2f}x "
            f"| {_mb(roles['client']['bytes_per_mstep'])} | {_mb(roles['server']['bytes_per_mstep'])} "
            f"| {_mb(roles['worker']['bytes_per_mstep'])} | {_cpu(roles['client']['cpu'])} "
            f"| {_cpu(roles['server']['cpu'])} | {_cpu(roles['worker']['cpu'])} "
            f"| {_busy(roles['server']['cpu'], cores, run['seconds'])} "
            f"| {_busy(roles['worker']['cpu'], cores, run['seconds'])} | {'yes' if run['same_model'] else '**no**'} |")
    lines += [
        "",
        "Seconds are the timed pass in the client (after an untimed warm-up on one chunk that loads the kernels "
        "everywhere); bytes are a host's link counters (sent + received, every frame and header) over the same "
        "time, per M-step; CPU seconds are its cgroup's, and *busy* is that over the quota × the seconds (100%: the "
        "host's CPU was the limit all along). The quotas add up to "
        f"{cores * (max(r['workers'] for r in report['runs']) + 2):g} cores at the most workers, on a machine "
        "shared with other work: a run that waited for a core reads slower than its hosts are.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.render:
        return publish(json.loads(args.render.read_text(encoding="utf-8")), args)
    # SIGTERM as an exception: the hosts' handler removes them first, then this lets the finally blocks run
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    reason = unavailable()
    if reason:
        logger.error("cannot build scaled-down hosts here: %s", reason)
        return 2
    from distlda.corpora.binary import BinaryCorpus
    from distlda.datasets.synthetic import make_lda_corpus

    workdir = Path(tempfile.mkdtemp(prefix="distlda-scaling-"))
    try:
        synthetic = make_lda_corpus(args.docs, TERMS, TOPICS, doc_length=DOC_LENGTH, alpha=1.0 / TOPICS,
                                    eta=0.01, random_state=0)
        BinaryCorpus.serialize(workdir / "corpus", synthetic, num_terms=TERMS)
        corpus = BinaryCorpus(workdir / "corpus")
        baseline = one_run(0, args.bandwidths[0], args, workdir, None)
        runs = [one_run(w, b * 1.0, args, workdir, workdir / f"w0-{args.bandwidths[0]:g}g.npy")
                for b in args.bandwidths for w in args.workers]
        report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                  "docs": corpus.num_docs, "nnz": corpus.num_nnz, "cores": args.cores, "baseline": baseline,
                  "runs": runs}
    except HostsUnavailable as exc:
        logger.error("cannot build scaled-down hosts here: %s", exc)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    json_out = args.json_out or ROOT / "bench" / "results" / f"scaling-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    logger.info("wrote %s", json_out)
    return publish(report, args)


def publish(report: dict[str, Any], args: argparse.Namespace) -> int:
    """The section into ``args.out`` for a full-size run, else on standard output."""
    section = render(report)
    if report["docs"] >= FULL_DOCS:
        write_marked_section(args.out, section, BEGIN, END)
        logger.info("wrote %s", args.out)
    else:
        sys.stdout.write(section + "\n")
        logger.info("fewer than %d documents: %s left as it is", FULL_DOCS, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
