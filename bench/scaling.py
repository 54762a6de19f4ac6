"""Scaling on scaled-down hosts: 1, 2, 4 and 8 workers against one local thread under the same CPU quota.

Every simulated host (``bench/hosts.py``, ``distlda.test.hosts``) is a CPU cgroup of c cores
(default 0.2) and a network namespace whose link is shaped to bandwidth × c, so compute and
network slow down together and speed-ups are those of real hosts. The client and the server
(name server + dispatcher) get hosts of their own; each worker gets one (``--threads 1``). The
baseline is one local thread in a host of the same quota. A synthetic corpus (default 1,000,000
documents, K = 100, V = 10,000) is written as a binary corpus that the workers read themselves
(jobs are document ranges); one pass, mini-batches of ``chunksize=2000, update_every=8``.
With ``--backend dask`` the same hosts run the Dask backend instead: the Dask scheduler in the
server's host, one single-process ``dask worker --nthreads 1`` per worker host, and a
``distributed.Client`` in the client's host (``distlda.test.daskhosts``). The default measures both
backends, each Dask run right after the Pyro5 run of the same W and link, so that the two meet
the same load on a shared machine; the report gives Dask's speed-up as a share of Pyro5's.

For links of 10 Gbit/s × c and 1 Gbit/s × c it reports, per W, the seconds, the speed-up over the
baseline measured in the same run, the bytes per M-step through each host role's link (its veth's
counters), the CPU seconds of each role (its cgroup), and whether the model equals the baseline's
bitwise. The report goes between ``<!-- scaling:begin -->`` and ``<!-- scaling:end -->`` of
``docs/scaling.md`` (with the full million documents only); the raw figures to
``bench/results/scaling-<time>.json``. Needs root (cgroups, namespaces, ``tc``): elsewhere it stops
and says why.

    sudo python bench/scaling.py                        # 1,000,000 documents, both backends: about 50 minutes
    sudo python bench/scaling.py --backend pyro         # the Pyro5 cluster only: about 25 minutes
    sudo python bench/scaling.py --docs 50000           # a quick look: prints the section
    sudo python bench/scaling.py --workers 8 --bandwidths 10 --backend dask
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import logging
import os
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
from hosts import BACKENDS, HostsUnavailable, measure, role_of, unavailable
from timeline import timeline_table

from distlda.cluster.timeline import ENV, per_mstep, read_marks

logger = logging.getLogger("bench.scaling")

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"
TOPICS, TERMS, DOC_LENGTH, CHUNKSIZE, UPDATE_EVERY = 100, 10_000, 50, 2000, 8
FULL_DOCS = 1_000_000
LARGE = {"terms": 100_000, "topics": 300, "docs": 200_000, "mstep": "lazy"}
"""``--large-vocabulary``: the issue's large-vocabulary run (Zipf-like word frequencies, the lazy M-step)."""
INIT = "gensim"
"""The random start: the anchor-word start (the default) is computed by the client alone, before the first
mini-batch, the same in the baseline and on a cluster; this benchmark times the passes, which the hosts share."""
ROLES = ("client", "server", "worker")
NEIGHBOUR_BUSY = "neighbour busy"
"""What a busy host's load prints once its training runs (the loaded baseline starts when every one has)."""
BACKEND_NAMES = {"pyro": "Pyro5", "dask": "Dask"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=FULL_DOCS, help="documents (default 1,000,000)")
    parser.add_argument("--cores", type=float, default=0.2, help="CPU quota of every host, in cores (default 0.2)")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts (default %(default)s)")
    parser.add_argument("--bandwidths", default="10,1",
                        help="link rates of the real hosts in Gbit/s, each scaled by --cores (default %(default)s)")
    parser.add_argument("--backend", default=",".join(BACKENDS),
                        help="clusters to measure: pyro (name server, dispatcher, workers), dask (a Dask scheduler "
                             "and Dask workers), or both (default %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scaling.md",
                        help="Markdown file whose section is written (only with the full million documents)")
    parser.add_argument("--json-out", type=Path, default=None, help="raw results (default bench/results/...)")
    parser.add_argument("--render", type=Path, default=None,
                        help="run nothing: write the section again from this results file")
    parser.add_argument("--large-vocabulary", action="store_true",
                        help=f"V = {LARGE['terms']:,} words of Zipf-like frequencies, K = {LARGE['topics']}, "
                             f"{LARGE['docs']:,} documents unless --docs says otherwise, mstep='lazy' (prints the "
                             "section; docs/scaling.md keeps the default corpus's)")
    parser.add_argument("--loaded-baseline", action="store_true",
                        help="also measure the baseline beside as many busy hosts as the most workers, each training "
                             "locally too: simulated hosts share the machine's caches and cores, so workers meet a "
                             "contention the plain baseline does not (speed-ups over both are reported)")
    parser.add_argument("--neighbour-load", type=Path, default=None, help=argparse.SUPPRESS)  # (one such host's load)
    parser.add_argument("--timeline", action="store_true",
                        help="have every process mark its M-steps' phases (DISTLDA_TIMELINE=1) and add each cluster "
                             "run's per-M-step table (ms after the dispatcher records the M-step) to its figures")
    args = parser.parse_args(argv)
    large = args.large_vocabulary
    args.terms, args.topics = (LARGE["terms"], LARGE["topics"]) if large else (TERMS, TOPICS)
    args.mstep = LARGE["mstep"] if large else "dense"
    if large and args.docs == FULL_DOCS:
        args.docs = LARGE["docs"]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.bandwidths = [float(b) for b in args.bandwidths.split(",") if b.strip()]
    args.backend = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not args.backend or set(args.backend) - set(BACKENDS) or len(set(args.backend)) != len(args.backend):
        parser.error(f"--backend takes one or more of {', '.join(BACKENDS)}, got {','.join(args.backend)}")
    if args.docs < CHUNKSIZE or not 0 < args.cores <= 1 or min(args.workers, default=0) < 1 or not args.bandwidths:
        parser.error("need --docs >= 2000, 0 < --cores <= 1, workers >= 1 and at least one bandwidth")
    return args


def training_params(num_terms: int, topics: int, mstep: str) -> dict[str, Any]:
    """The ``LdaModel`` arguments of every run of this benchmark but ``passes`` (the baseline's, the clusters' and
    a busy neighbour's)."""
    from distlda.datasets.synthetic import synthetic_id2word

    return dict(id2word=synthetic_id2word(num_terms), num_topics=topics, chunksize=CHUNKSIZE,
                update_every=UPDATE_EVERY, random_state=0, eval_every=0, alpha=1.0 / topics, eta=1.0 / topics,
                init=INIT, mstep=mstep)


def train_on_host(config: dict[str, Any], ns_conf: dict[str, Any] | None,
                  ready: Callable[[], None]) -> dict[str, Any]:
    """Runs in the client's host (see ``bench/hosts.py``): an untimed warm-up on one chunk (the kernels load
    in this process and in every worker), ``ready()``, then one timed pass; saves the statistics to
    ``config["save"]``. It trains on the Pyro5 cluster of ``ns_conf``, on the Dask scheduler of
    ``{"scheduler": address}`` (its client is opened before the warm-up), or without one on one local thread."""
    from distlda.corpora.binary import BinaryCorpus
    from distlda.models import LdaModel
    from distlda.test.daskhosts import cluster_kwargs

    corpus = BinaryCorpus(config["corpus"])
    params = {**training_params(corpus.num_terms, config.get("topics", TOPICS), config.get("mstep", "dense")),
              "passes": 1}
    with cluster_kwargs(ns_conf) as where:  # a Dask client is opened here, before the warm-up, and kept
        where = where or {"threads": 1}
        LdaModel(corpus.read_range(0, CHUNKSIZE), **params, **where)
        ready()
        started = time.perf_counter()
        model = LdaModel(corpus, **params, **where)
        seconds = time.perf_counter() - started
    np.save(config["save"], model.state.sstats)
    stats = model.training_stats or {}
    return {"seconds": seconds, "msteps": int(stats.get("msteps", 0)), "docs": corpus.num_docs}


def draw_corpus(docs: int, large_vocabulary: bool = False) -> Any:
    """The benchmark's synthetic corpus (the same documents for the same arguments)."""
    from distlda.datasets.synthetic import make_lda_corpus

    terms, topics = (LARGE["terms"], LARGE["topics"]) if large_vocabulary else (TERMS, TOPICS)
    return make_lda_corpus(docs, terms, topics, doc_length=DOC_LENGTH, alpha=1.0 / topics,
                           eta=zipf_prior(terms) if large_vocabulary else 0.01, random_state=0)


def zipf_prior(terms: int, exponent: float = 1.07, concentration: float = 0.01) -> np.ndarray:
    """The topics' Dirichlet prior of the large-vocabulary corpus: proportional to a Zipf law over the word ids, with
    the total ``concentration`` × ``terms`` of the default corpus's flat 0.01 — so every topic's expected word
    frequencies, and the corpus's, fall off as word id^-exponent."""
    weights = np.arange(1, terms + 1, dtype=np.float64) ** -exponent
    return concentration * terms * weights / weights.sum()


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


def neighbour_load(corpus_path: Path) -> None:
    """A busy host's load beside a loaded baseline: local training on one thread, as a worker's, until stopped."""
    from distlda.corpora.binary import BinaryCorpus
    from distlda.models import LdaModel

    corpus = BinaryCorpus(corpus_path)
    default = corpus.num_terms == TERMS  # else the large vocabulary's corpus
    params = {**training_params(corpus.num_terms, TOPICS if default else LARGE["topics"],
                                "dense" if default else LARGE["mstep"]), "threads": 1}
    LdaModel(corpus.read_range(0, CHUNKSIZE), passes=1, **params)  # the kernels loaded: busy from here on
    print(NEIGHBOUR_BUSY, flush=True)
    LdaModel(corpus, passes=10**6, **params)


def one_run(workers: int, bandwidth: float, backend: str, args: argparse.Namespace, workdir: Path,
            baseline: Path | None, neighbours: int = 0) -> dict[str, Any]:
    """Measure one configuration; with ``baseline`` also compare its model with the baseline's, bitwise; a local
    run with ``neighbours`` runs beside that many busy hosts (:func:`neighbour_load`)."""
    name = f"{backend}-w{workers}-{bandwidth:g}g" if workers else f"w0-{bandwidth:g}g" + (
        f"-beside{neighbours}" if neighbours else "")
    save = workdir / f"{name}.npy"
    load = [sys.executable, str(Path(__file__).resolve()), "--neighbour-load", str(workdir / "corpus")]
    run = measure(workers, args.cores, bandwidth * 1e9, f"{Path(__file__).resolve()}:train_on_host",
                  {"corpus": str(workdir / "corpus"), "save": str(save), "topics": args.topics, "mstep": args.mstep},
                  workdir / "logs" / name, backend=backend, neighbours=neighbours, neighbour_argv=load,
                  neighbour_ready=NEIGHBOUR_BUSY)
    run["roles"] = by_role(run)
    if args.timeline and workers:
        run["timeline"] = per_mstep(read_marks(sorted((workdir / "logs" / name).glob("*.log"))))
        logger.info("%s: per M-step, ms after the dispatcher recorded it:\n%s", name, timeline_table(run["timeline"]))
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


def _backend(run: dict[str, Any]) -> str:
    return run.get("backend", "pyro")  # results written before the Dask backend was measured name none


def _pyro_seconds(run: dict[str, Any], runs: list[dict[str, Any]]) -> float | None:
    """The seconds of the Pyro5 run of the same workers and link as ``run``, if one was measured."""
    same = [r["result"]["seconds"] for r in runs if _backend(r) == "pyro" and r["workers"] == run["workers"]
            and r["bandwidth"] == run["bandwidth"]]
    return same[0] if same else None


def _share(run: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """A Dask run's speed-up as a share of the Pyro5 cluster's at the same W and link (— for the others)."""
    pyro = _pyro_seconds(run, runs) if _backend(run) == "dask" else None
    return "—" if pyro is None else f"{pyro / run['result']['seconds']:.0%}"


def _intro(report: dict[str, Any]) -> str:
    base, cores = report["baseline"], report["cores"]
    base_seconds = base["result"]["seconds"]
    terms, topics = report.get("terms", TERMS), report.get("topics", TOPICS)
    zipf = " (Zipf-like frequencies)" if terms != TERMS else ""
    mstep = f", `mstep='{report['mstep']}'`" if report.get("mstep", "dense") != "dense" else ""
    backends = sorted({_backend(r) for r in report["runs"]}, key=list(BACKEND_NAMES).index)
    roles = {"pyro": "on the Pyro5 rows the server runs the name server and the dispatcher, each worker host one "
                     "`distlda.cluster.worker --threads 1`",
             "dask": "on the Dask rows the server runs the Dask scheduler, each worker host one `dask worker "
                     "--nthreads 1 --no-nanny`, and the client a `distributed.Client` (`distlda.test.daskhosts`)"}
    return (
        f"Written by `python bench/scaling.py` on {report['date']} (git {report['machine']['git']}); "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}). Every host is a CPU cgroup of "
        f"{cores:g} cores and a network namespace whose link is shaped to bandwidth × {cores:g} each way "
        f"(`bench/hosts.py`); the client and the server have hosts of their own, and each worker one: "
        f"{'; '.join(roles[b] for b in backends)}. A synthetic corpus of {report['docs']:,} documents, {terms:,} "
        f"terms{zipf} and {report['nnz']:,} non-zeros from {topics} topics, read by the workers from a binary corpus "
        f"(jobs are document ranges); one pass, K = {topics}, `chunksize={CHUNKSIZE}, update_every={UPDATE_EVERY}`"
        f"{mstep} "
        f"({base['result']['msteps']} M-steps), gensim's random start (`init='{INIT}'`: the timed part is the pass, "
        "which the hosts share; the anchor-word start is the client's alone). The baseline is one local thread in "
        f"a host of the same quota: {base_seconds:.1f} s ({report['docs'] / base_seconds:,.0f} documents/s, "
        f"{_cpu(base['hosts']['client']['cpu'])} CPU seconds).")


def _row(run: dict[str, Any], report: dict[str, Any]) -> str:
    roles, cores = run["roles"], report["cores"]
    seconds = run["result"]["seconds"]
    return (f"| {run['bandwidth'] / 1e9:g} Gbit/s | {BACKEND_NAMES[_backend(run)]} | {run['workers']} "
            f"| {seconds:.1f} | {report['baseline']['result']['seconds'] / seconds:.2f}x "
            + (f"| {report['loaded_baseline']['result']['seconds'] / seconds:.2f}x " if "loaded_baseline" in report
               else "")
            + f"| {_share(run, report['runs'])} "
            f"| {_mb(roles['client']['bytes_per_mstep'])} | {_mb(roles['server']['bytes_per_mstep'])} "
            f"| {_mb(roles['worker']['bytes_per_mstep'])} | {_cpu(roles['client']['cpu'])} "
            f"| {_cpu(roles['server']['cpu'])} | {_cpu(roles['worker']['cpu'])} "
            f"| {_busy(roles['server']['cpu'], cores, run['seconds'])} "
            f"| {_busy(roles['worker']['cpu'], cores, run['seconds'])} | {'yes' if run['same_model'] else '**no**'} |")


def _shares_at_most_workers(runs: list[dict[str, Any]]) -> str:
    """A sentence: Dask's share of Pyro5's speed-up at the most workers measured on both, per link."""
    dask = [r for r in runs if _backend(r) == "dask" and _pyro_seconds(r, runs) is not None]
    if not dask:
        return ""
    most = max(r["workers"] for r in dask)
    found = ", ".join(f"{_share(r, runs)} ({r['bandwidth'] / 1e9:g} Gbit/s)" for r in dask if r["workers"] == most)
    return (f" With {most} worker hosts the Dask backend reaches {found} of the Pyro5 cluster's speed-up (the *Dask "
            "/ Pyro5* column: the Pyro5 run's seconds over the Dask run's, the two measured one after the other).")


def render(report: dict[str, Any]) -> str:
    cores, loaded = report["cores"], report.get("loaded_baseline")
    lines = [
        "## Measured on scaled-down hosts",
        "",
        _intro(report),
        "",
        "| link (real host) | backend | workers | seconds | vs 1 local thread | "
        + ("vs 1 local thread beside busy hosts | " if loaded else "")
        + "Dask / Pyro5 | MB per M-step: client | server | each worker | CPU s: client | server | each worker "
        "| busy: server | each worker | model = baseline |",
        "| --- | --- | ---: | ---: | ---: | " + ("---: | " if loaded else "")
        + "---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
        *(_row(run, report) for run in report["runs"]),
        "",
        "Seconds are the timed pass in the client (after an untimed warm-up on one chunk that loads the kernels "
        "everywhere); bytes are a host's link counters (sent + received, every frame and header) over the same "
        "time, per M-step; CPU seconds are its cgroup's, and *busy* is that over the quota × the seconds (100%: the "
        "host's CPU was the limit all along). The quotas add up to "
        f"{cores * (max(r['workers'] for r in report['runs']) + 2):g} cores at the most workers, on a machine "
        "shared with other work: a run that waited for a core reads slower than its hosts are."
        + _shares_at_most_workers(report["runs"]) + _loaded_note(report),
    ]
    return "\n".join(lines)


def _loaded_note(report: dict[str, Any]) -> str:
    """A sentence on the baseline measured beside busy hosts (none when it was not measured)."""
    loaded = report.get("loaded_baseline")
    if loaded is None:
        return ""
    base, seconds = report["baseline"]["result"]["seconds"], loaded["result"]["seconds"]
    return (f" The simulated hosts share the machine's caches and cores, so a worker meets a contention that the "
            f"baseline, alone on the machine, does not; the same baseline beside {loaded['neighbours']} busy hosts "
            f"(each training locally on one thread, as a worker fits) took {seconds:.1f} s against {base:.1f} s "
            f"({seconds / base:.2f}x; `--loaded-baseline`), and the column *beside busy hosts* divides by it. Real "
            "hosts have caches of their own, so their speed-ups lie between the two columns (the second would be "
            "exact if every part of a run slowed down alike; waits on the links do not).")


def _installed(distribution: str) -> bool:
    """Whether ``distribution`` is installed (by its metadata: this folder's distributed.py is no such package)."""
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.neighbour_load is not None:
        neighbour_load(args.neighbour_load)
        return 0
    if args.render:
        return publish(json.loads(args.render.read_text(encoding="utf-8")), args)
    # SIGTERM as an exception: the hosts' handler removes them first, then this lets the finally blocks run
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.timeline:
        os.environ[ENV] = "1"  # the hosts' processes inherit it
    reason = unavailable()
    if reason:
        logger.error("cannot build scaled-down hosts here: %s", reason)
        return 2
    if "dask" in args.backend and not _installed("distributed"):
        logger.error("--backend dask needs dask and distributed: pip install 'distlda[dask]'")
        return 2
    from distlda.corpora.binary import BinaryCorpus

    workdir = Path(tempfile.mkdtemp(prefix="distlda-scaling-"))
    try:
        synthetic = draw_corpus(args.docs, args.large_vocabulary)
        BinaryCorpus.serialize(workdir / "corpus", synthetic, num_terms=args.terms)
        corpus = BinaryCorpus(workdir / "corpus")
        baseline = one_run(0, args.bandwidths[0], "pyro", args, workdir, None)
        loaded = one_run(0, args.bandwidths[0], "pyro", args, workdir, workdir / f"w0-{args.bandwidths[0]:g}g.npy",
                         max(args.workers)) if args.loaded_baseline else None
        # the backends one after the other at each W, so that both meet about the same load on a shared machine
        runs = [one_run(w, b * 1.0, backend, args, workdir, workdir / f"w0-{args.bandwidths[0]:g}g.npy")
                for b in args.bandwidths for w in args.workers for backend in args.backend]
        report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                  "docs": corpus.num_docs, "nnz": corpus.num_nnz, "cores": args.cores, "backends": args.backend,
                  "terms": args.terms, "topics": args.topics, "mstep": args.mstep,
                  "baseline": baseline, "runs": runs}
        if loaded is not None:
            report["loaded_baseline"] = loaded
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
    """The section into ``args.out`` for a full run (the million documents, every default worker count and link),
    else on standard output: a partial run must not replace the full table."""
    section = render(report)
    missing = _missing_from_full(report)
    if not missing:
        write_marked_section(args.out, section, BEGIN, END)
        logger.info("wrote %s", args.out)
    else:
        sys.stdout.write(section + "\n")
        logger.info("not a full run (%s): %s left as it is", missing, args.out)
    return 0


def _missing_from_full(report: dict[str, Any]) -> str:
    """What a run lacks to be the full one of docs/scaling.md ('' when nothing)."""
    defaults = parse_args([])
    if report.get("terms", TERMS) != TERMS or report.get("topics", TOPICS) != TOPICS:
        return "not the default corpus"
    if report["docs"] < FULL_DOCS:
        return f"fewer than {FULL_DOCS} documents"
    have = {(run["workers"], run["bandwidth"] / 1e9) for run in report["runs"]}
    want = {(w, b) for w in defaults.workers for b in defaults.bandwidths}
    lacking = ", ".join(f"{w} workers at {b:g} Gbit/s" for w, b in sorted(want - have))
    return f"no run of {lacking}" if lacking else ""


if __name__ == "__main__":
    sys.exit(main())
