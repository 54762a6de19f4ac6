"""Scaling figures: a million-document synthetic corpus trained locally and on 1 and 2 workers.

The corpus is drawn from known topics (``distlda.datasets.synthetic``) and written as a binary
corpus, so the workers read their documents themselves and jobs are document ranges. Each
configuration trains one pass (K = 100, mini-batches of 2,000 documents) in this process, one
after another; a cluster is started before its clock starts. From ``training_stats`` it takes the
E-step rate per worker, the client's time per M-step and the bytes per M-step, fits the model of
``docs/scaling.md`` to the 1-worker run, and compares its prediction with the 2-worker run. The
results go between ``<!-- scaling:begin -->`` and ``<!-- scaling:end -->`` of ``docs/scaling.md``;
the raw figures to ``bench/results/scaling-<time>.json``.

    python bench/scaling.py                    # 1,000,000 documents: about 4 minutes on 2 cores
    python bench/scaling.py --docs 100000      # a quicker look (writes bench/results/ only)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from clusters import cpu_seconds
from common import write_marked_section
from compare import machine

from distlda.cluster.local import LocalCluster
from distlda.corpora.binary import BinaryCorpus
from distlda.datasets.synthetic import make_lda_corpus
from distlda.evaluation import topic_recovery
from distlda.models import LdaModel

logger = logging.getLogger("bench.scaling")

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"
TOPICS, TERMS, DOC_LENGTH, CHUNKSIZE = 100, 10_000, 50, 2000
CONFIGS = [("local, 1 thread", 0, 1), ("local, 2 threads", 0, 2), ("1 worker", 1, 1), ("2 workers", 2, 1)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000, help="documents (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scaling.md",
                        help="Markdown file to write the results into (only with the full million documents)")
    parser.add_argument("--json-out", type=Path, default=None, help="raw results (default bench/results/...)")
    return parser.parse_args(argv)


def train(corpus: BinaryCorpus, id2word: dict[int, str], workers: int,
          threads: int) -> tuple[LdaModel, float, dict[str, float | None]]:
    """Train one configuration; returns the model, wall seconds and the CPU seconds of every process of the run
    (``client``: this process; on a cluster also ``nameserver``, ``dispatcher`` and ``workers``, summed; None
    where ``/proc`` cannot be read)."""
    params = dict(id2word=id2word, num_topics=TOPICS, chunksize=CHUNKSIZE, passes=1, random_state=0,
                  eval_every=0, alpha=1.0 / TOPICS, eta=1.0 / TOPICS)
    if not workers:
        started, cpu = time.perf_counter(), time.process_time()
        model = LdaModel(corpus, threads=threads, **params)
        return model, time.perf_counter() - started, {"client": time.process_time() - cpu}
    with LocalCluster(workers=workers, threads_per_worker=threads) as cluster:
        # a tiny untimed training first: the workers load their kernels outside the clock and the CPU counts
        LdaModel(corpus.read_range(0, CHUNKSIZE), distributed=True, ns_conf=cluster.ns_conf, **params)
        pids = cluster.pids()
        roles = {"nameserver": [pids["nameserver"]], "dispatcher": [pids["dispatcher"]], "workers": pids["workers"]}
        before = {role: [cpu_seconds(pid) for pid in group] for role, group in roles.items()}
        started, cpu = time.perf_counter(), time.process_time()
        model = LdaModel(corpus, distributed=True, ns_conf=cluster.ns_conf, **params)
        seconds, client = time.perf_counter() - started, time.process_time() - cpu
        used: dict[str, float | None] = {"client": client}
        for role, group in roles.items():
            after = [cpu_seconds(pid) for pid in group]
            known = None not in after and None not in before[role]
            used[role] = sum(a - b for a, b in zip(after, before[role])) if known else None
        return model, seconds, used


def total_cpu(run: dict[str, Any]) -> float | None:
    """CPU seconds of every process of the run, or None when one could not be read."""
    values = list(run["cpu"].values())
    return None if None in values else sum(values)


def cpu_ceiling(run: dict[str, Any], cores: int) -> float | None:
    """The most documents/s this run's work allows on ``cores`` cores: its documents over its CPU seconds (every
    process) shared out perfectly between the cores. A configuration cannot beat it on this machine however
    little it waits. None when the CPU time is unknown."""
    cpu = total_cpu(run)
    return None if not cpu else run["docs"] / (cpu / cores)


def _number(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def fit_model(local: dict[str, Any], run: dict[str, Any]) -> dict[str, float]:
    """The model's per-M-step terms (see docs/scaling.md), from the local 1-thread run and a distributed run.

    e: documents/s of one worker (phase 1 of the E-step); r: one replay of an M-step on one thread, taken
    as the 1-thread local run's reduce + M-step; o: the rest of the distributed run's time per M-step
    (calls, hops, the client's syncs, waiting); b: bytes through the dispatcher per M-step per worker.
    """
    s, m = run["stats"], run["stats"]["msteps"]
    batch = run["docs"] / m
    estep_rate = run["docs"] / s["gamma_seconds"]
    ls = local["stats"]
    replay = (ls["reduce_seconds"] + ls["mstep_seconds"]) / ls["msteps"]
    overhead = run["seconds"] / m - batch / (estep_rate * run["workers"]) - replay
    gamma_bytes = batch * TOPICS * 4
    return {"batch": batch, "estep_rate": estep_rate, "replay": replay, "overhead": overhead,
            "gamma_bytes": gamma_bytes, "client_bytes": (s["bytes_sent"] + s["bytes_received"]) / m}


def predict(model: dict[str, float], workers: int, bandwidth: float | None = None,
            cores: int | None = None) -> float:
    """Documents/s for ``workers`` workers: the E-step is shared, each M-step's replay and the fixed overhead
    are not. ``bandwidth`` (bytes/s) adds the dispatcher's transfers (γ in once, out to every worker);
    ``cores`` (one machine for all) caps it by the CPU work of a batch, where every worker replays the M-step."""
    per_batch = model["batch"] / (model["estep_rate"] * workers) + model["replay"] + model["overhead"]
    if bandwidth:
        per_batch += (workers + 1) * model["gamma_bytes"] / bandwidth
    if cores:
        work = model["batch"] / model["estep_rate"] + workers * model["replay"]
        per_batch = max(per_batch, work / cores)
    return model["batch"] / per_batch


def render(report: dict[str, Any]) -> str:
    runs, fit = report["runs"], report["fit"]
    cores = int(report["machine"].get("usable_cores") or report["machine"].get("cores") or 1)
    ceiling = cpu_ceiling(runs[3], cores)  # 2 workers
    lines = [
        "## Measured",
        "",
        f"Written by `python bench/scaling.py` on {report['date']} (git {report['machine']['git']}); "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}). A synthetic corpus of "
        f"{report['docs']:,} documents, {TERMS:,} terms and {report['nnz']:,} non-zeros drawn from {TOPICS} known "
        f"topics (made in {report['make_seconds']:.0f} s, written as a binary corpus in "
        f"{report['write_seconds']:.0f} s); one pass, K = {TOPICS}, mini-batches of {CHUNKSIZE:,} documents. "
        "Workers read the corpus themselves: jobs are document ranges.",
        "",
        "| configuration | seconds | docs/s | vs 1 thread | E-step docs/s per thread | client CPU s "
        "| CPU s, every process | ceiling on this machine, docs/s | client bytes per M-step "
        "| topic recovery (mean Hellinger) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = runs[0]["docs_per_second"]
    for run in runs:
        s = run["stats"]
        per_thread = run["docs"] / s["gamma_seconds"] / (1 if run["workers"] else run["threads"])
        lines.append(
            f"| {run['name']} | {run['seconds']:.1f} | {run['docs_per_second']:,.0f} | "
            f"{run['docs_per_second'] / base:.2f}x | {per_thread:,.0f} | "
            f"{run['cpu']['client']:.1f} | {_number(total_cpu(run), '.1f')} | "
            f"{_number(cpu_ceiling(run, cores), ',.0f') if max(run['workers'], run['threads']) > 1 else '—'} | "
            f"{(s['bytes_sent'] + s['bytes_received']) / s['msteps'] / 1e6:.2f} MB | {run['recovery']:.3f} |")
    lines += [
        "",
        "The E-step rate per thread is documents / (`gamma_seconds` × threads); on a cluster γ seconds are summed"
        " over the workers (one thread each), so it is documents / `gamma_seconds`. γ seconds are the jobs' wall "
        "time: on a cluster they include reading the documents and any time a worker waited for a core. Client "
        "CPU is the training process's own CPU time (locally that is all the work; on a cluster the workers apply"
        " the M-steps, and the client sends jobs and takes the model from a worker every 20 M-steps and at the "
        "end). Client bytes are mostly those two transfers of the K × V statistics (a base out, the model in). "
        "CPU, every process, adds the name server's, dispatcher's and workers' CPU seconds to the client's (from "
        "`/proc/<pid>/stat`, after an untimed warm-up training on the cluster); the ceiling, for the "
        "configurations with more than one thread or worker, is the documents over that CPU time shared perfectly"
        f" between the {cores} cores: "
        "none can beat its ceiling here, however little it waits.",
        "",
    ]
    if ceiling is not None:
        lines += [
            f"On this machine 2 workers can therefore reach at most {ceiling / runs[2]['docs_per_second']:.2f}x "
            f"the measured 1-worker run and {ceiling / runs[0]['docs_per_second']:.2f}x the 1-thread local run: "
            "every worker replays every M-step (which keeps γ, not the K × V statistics, on the wire), and the "
            f"client, name server and dispatcher share the same {cores} cores.",
            "",
        ]
    lines += [
        "## The model against the measurements",
        "",
        f"Fitted to the 1-worker run: e = {fit['estep_rate']:,.0f} documents/s per worker, "
        f"r = {fit['replay'] * 1000:.1f} ms per replay of an M-step (the 1-thread local run's reduce and M-step), "
        f"o = {fit['overhead'] * 1000:.1f} ms of fixed overhead per M-step, and {fit['gamma_bytes'] / 1e6:.2f} MB "
        "of γ per hop.",
        "",
        "| workers | predicted, separate hosts, 1 Gbit/s | predicted, this machine | measured |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in report["predictions"]:
        measured = f"{row['measured']:,.0f}" if row["measured"] else "—"
        lines.append(f"| {row['workers']} | {row['hosts']:,.0f} | {row['here']:,.0f} | {measured} |")
    lines += ["", "The model's column for this machine caps a mini-batch by the workers' E-step and replays alone; "
              "the CPU ceiling above also counts the client, the name server, the dispatcher and the workers' "
              "calls, measured, so where the two differ the ceiling is the stricter bound."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="distlda-scaling-"))
    try:
        t = time.perf_counter()
        synthetic = make_lda_corpus(args.docs, TERMS, TOPICS, doc_length=DOC_LENGTH, alpha=1.0 / TOPICS,
                                    eta=0.01, random_state=0)
        make_seconds = time.perf_counter() - t
        t = time.perf_counter()
        BinaryCorpus.serialize(workdir / "corpus", synthetic, num_terms=TERMS)
        write_seconds = time.perf_counter() - t
        corpus = BinaryCorpus(workdir / "corpus")
        logger.info("%d documents, %d non-zeros: drawn in %.0f s, written in %.0f s", corpus.num_docs,
                    corpus.num_nnz, make_seconds, write_seconds)
        # load the compiled kernels before any clock starts (workers load theirs at their first job, timed)
        LdaModel([[(0, 1.0), (1, 2.0)]], id2word={0: "a", 1: "b"}, num_topics=2, eval_every=0)
        runs = []
        for name, workers, threads in CONFIGS:
            model, seconds, cpu = train(corpus, synthetic.id2word, workers, threads)
            stats = dict(model.training_stats)
            recovery = topic_recovery(synthetic.topics, model.get_topics()).mean_hellinger
            runs.append({"name": name, "workers": workers, "threads": threads, "docs": corpus.num_docs,
                         "seconds": seconds, "docs_per_second": corpus.num_docs / seconds, "stats": stats,
                         "cpu": cpu, "recovery": recovery})
            logger.info("%s: %.1f s, %.0f docs/s, recovery %.3f", name, seconds, corpus.num_docs / seconds, recovery)
        one, two = runs[2], runs[3]
        fit = fit_model(runs[0], one)
        predictions = [{"workers": w, "hosts": predict(fit, w, bandwidth=125e6), "here": predict(fit, w, cores=2),
                        "measured": {1: one, 2: two}.get(w, {}).get("docs_per_second")} for w in (1, 2, 4, 8)]
        report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                  "docs": corpus.num_docs, "nnz": corpus.num_nnz, "make_seconds": make_seconds,
                  "write_seconds": write_seconds, "runs": runs, "fit": fit, "predictions": predictions,
                  "wall_seconds": time.perf_counter() - started}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_out = args.json_out or ROOT / "bench" / "results" / f"scaling-{stamp}.json"
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    section = render(report)
    if args.docs >= 1_000_000:
        write_marked_section(args.out, section, BEGIN, END)
        logger.info("wrote %s and %s", args.out, json_out)
    else:
        print(section)
        logger.info("wrote %s (fewer than a million documents: %s left as it is)", json_out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
