"""The floor of the scaling targets: the least time any cluster that keeps a local run's model can take.

``distlda.test.floor`` is a training with nothing in it but what such a design must do between two mini-batches
(each worker fits its chunks, sends the partial rows to their owners, the owners apply the M-step to their ranges
of words, and everyone receives the new rows), over plain TCP between the workers, with no dispatcher, no calls
and no replica. It gives the local model bitwise (checked here against the baseline of every run), so it does the
whole work. This benchmark runs it on the scaled-down hosts of ``bench/scaling.py`` (c cores each, links of
bandwidth × c), beside the baseline of that benchmark (one local thread in a host of c cores, the real
``LdaModel``), in rounds: each round measures the baseline, then the floor at every W and link, so every ratio is
of two runs close in time; the report gives the median over the rounds of each ratio, and the phases of a
mini-batch (median over the mini-batches and workers of the last round).

    sudo python bench/floor.py                                  # 1,000,000 documents, W = 1, 2, 4, 8, two links
    sudo python bench/floor.py --docs 200000 --workers 2,8 --rounds 1
    sudo python bench/floor.py --workers 8 --bandwidths 10 --rounds 4 --ab DISTLDA_FLOOR_THREADS=1

The results go to ``bench/results/floor-<time>.json``; the table to standard output. ``--ab NAME=VALUE`` measures
instead the floor without and with an environment variable for its workers, in interleaved pairs. Needs root (see
``bench/scaling.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from compare import machine
from hosts import measure, unavailable
from scaling import CHUNKSIZE, FULL_DOCS, TERMS, TOPICS, draw_corpus, training_params

from distlda.test.hostcluster import read_meters
from distlda.test.hosts import HostNetwork, HostsUnavailable, stop_processes

logger = logging.getLogger("bench.floor")

ROOT = Path(__file__).resolve().parent.parent
PORT = 7811
PHASES = ("fit", "reduce", "mstep", "gather")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=FULL_DOCS, help="documents (default %(default)s)")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts (default %(default)s)")
    parser.add_argument("--bandwidths", default="10,1",
                        help="link rates of a real host in Gbit/s (default %(default)s)")
    parser.add_argument("--cores", type=float, default=0.2, help="CPU quota of every host (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of baseline + every configuration (default 2)")
    parser.add_argument("--json-out", type=Path, help="where the raw results go")
    parser.add_argument("--ab", metavar="NAME=VALUE",
                        help="instead: --rounds interleaved pairs at the most workers and the first link, without and "
                             "with this environment variable for the workers (e.g. DISTLDA_FLOOR_THREADS=1)")
    args = parser.parse_args(argv)
    if args.ab is not None and "=" not in args.ab:
        parser.error(f"--ab takes NAME=VALUE, got {args.ab!r}")
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.bandwidths = [float(b) for b in args.bandwidths.split(",") if b.strip()]
    if args.docs < CHUNKSIZE or not 0 < args.cores <= 1 or min(args.workers, default=0) < 1 or args.rounds < 1:
        parser.error("need --docs >= 2000, 0 < --cores <= 1, workers >= 1 and --rounds >= 1")
    return args


def floor_run(workers: int, bandwidth: float, cores: float, workdir: Path, name: str) -> dict[str, Any]:
    """One run of the floor on ``workers`` hosts; its wall seconds (the slowest worker's), its phases, the bytes
    per mini-batch of each worker's link and whether worker 0's model equals the baseline's."""
    names = [f"worker{i}" for i in range(workers)]
    logs = workdir / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    with HostNetwork(names, cores=cores, rate=bandwidth * cores) as network:
        addresses = [[network[n].address, PORT] for n in names]
        procs = []
        try:
            before = read_meters(network)
            for i, host in enumerate(names):
                config = {"corpus": str(workdir / "corpus"), "index": i, "addresses": addresses,
                          "params": _params(), "out": str(logs / f"{host}.json"),
                          "save": str(workdir / f"{name}.npy")}
                (logs / f"{host}.config.json").write_text(json.dumps(config))
                procs.append(network[host].popen([sys.executable, "-m", "distlda.test.floor",
                                                  str(logs / f"{host}.config.json")], log=logs / f"{host}.log"))
            codes = [proc.wait(timeout=7200) for proc in procs]
            after = read_meters(network)
        finally:
            stop_processes(procs)
    if any(codes):
        raise RuntimeError(f"a worker of {name} failed (exit codes {codes}); see {logs}")
    results = [json.loads((logs / f"{n}.json").read_text()) for n in names]
    batches = results[0]["batches"]
    link = [(after[n]["sent"] - before[n]["sent"] + after[n]["received"] - before[n]["received"]) / batches
            for n in names]
    phases = {p: statistics.median(s for r in results for s in r["phases"][p]) for p in PHASES}
    cpu = {p: statistics.median(s for r in results for s in r["cpu"][p]) for p in PHASES}
    periods = [sum(r["phases"][p][b] for p in PHASES) for r in results for b in range(batches)]
    fits = [[r["phases"]["fit"][b] for r in results] for b in range(batches)]
    lead = statistics.median(max(f) - statistics.median(f) for f in fits)  # the slowest fit's lead, per batch
    baseline = workdir / "baseline.npy"
    same = bool(np.array_equal(np.load(workdir / f"{name}.npy"), np.load(baseline))) if baseline.exists() else None
    return {"workers": workers, "bandwidth": bandwidth, "seconds": max(r["seconds"] for r in results),
            "batches": batches, "phases_ms": {p: 1e3 * v for p, v in phases.items()},
            "cpu_ms": {p: 1e3 * v for p, v in cpu.items()},
            "period_ms": 1e3 * statistics.median(periods), "slowest_fit_lead_ms": 1e3 * lead,
            "link_bytes_per_batch": statistics.mean(link),
            "same_model": same}


def _params() -> dict[str, Any]:
    params = training_params(TERMS, TOPICS, "dense")
    params.pop("id2word")  # the floor's workers build the same synthetic vocabulary
    return params


def one_round(args: argparse.Namespace, workdir: Path, number: int) -> dict[str, Any]:
    """The baseline, then the floor at every link and W (W = 1 once: it has no link to speak of)."""
    baseline = measure(0, args.cores, args.bandwidths[0] * 1e9, f"{ROOT / 'bench' / 'scaling.py'}:train_on_host",
                       {"corpus": str(workdir / "corpus"), "save": str(workdir / "baseline.npy"), "topics": TOPICS,
                        "mstep": "dense"}, workdir / "logs" / f"baseline{number}")
    logger.info("round %d: baseline %.1f s", number, baseline["seconds"])
    runs = []
    for bandwidth in args.bandwidths:
        for workers in args.workers:
            if workers == 1 and bandwidth != args.bandwidths[0]:
                continue
            run = floor_run(workers, bandwidth * 1e9, args.cores, workdir, f"r{number}-w{workers}-{bandwidth:g}g")
            run["speedup"] = baseline["seconds"] / run["seconds"]
            # the bound of no CPU for the exchange and no waiting: the fit's share and the link's time of the bytes
            wire = run["link_bytes_per_batch"] / 2 * 8 / (bandwidth * 1e9 * args.cores) if workers > 1 else 0.0
            run["bound"] = baseline["seconds"] / (baseline["seconds"] / workers + run["batches"] * wire)
            logger.info("round %d: %d workers, %g Gbit/s x c: %.1f s, %.2fx, period %.0f ms, same model: %s", number,
                        workers, bandwidth, run["seconds"], run["speedup"], run["period_ms"], run["same_model"])
            runs.append(run)
    return {"baseline_seconds": baseline["seconds"], "runs": runs}


def ab_pairs(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """``--ab``: the floor without and with an environment variable, in interleaved pairs (each pair's order
    alternates); the seconds of each and the median of the paired ratios (with / without)."""
    name, value = args.ab.split("=", 1)
    workers, bandwidth = max(args.workers), args.bandwidths[0]
    seconds: dict[str, list[float]] = {"without": [], "with": []}
    for pair in range(args.rounds):
        for side in ("without", "with") if pair % 2 == 0 else ("with", "without"):
            previous = os.environ.pop(name, None)
            if side == "with":
                os.environ[name] = value
            try:
                run = floor_run(workers, bandwidth * 1e9, args.cores, workdir, f"ab{pair}-{side}")
            finally:
                os.environ.pop(name, None)
                if previous is not None:
                    os.environ[name] = previous
            seconds[side].append(run["seconds"])
            logger.info("pair %d, %s %s: %.2f s", pair, side, args.ab, run["seconds"])
    ratios = [b / a for a, b in zip(seconds["without"], seconds["with"])]
    logger.info("with %s / without: median %.3f (%s)", args.ab, statistics.median(ratios),
                ", ".join(f"{r:.3f}" for r in ratios))
    return {"variable": args.ab, "workers": workers, "bandwidth": bandwidth * 1e9, "seconds": seconds,
            "ratios": ratios, "median_ratio": statistics.median(ratios)}


def render(report: dict[str, Any]) -> str:
    """The table: per link and W, the median speed-up over the rounds and the phases of a mini-batch."""
    baselines = ", ".join(f"{r['baseline_seconds']:.1f}" for r in report["rounds"])
    lines = [f"Floor of any design that keeps the local model: {report['docs']:,} documents, hosts of "
             f"{report['cores']:g} cores, {len(report['rounds'])} round(s); baseline (one local thread) "
             f"{baselines} s.", "",
             "| link | W | seconds | speed-up (median) | bound | period ms | fit | slowest fit's lead | reduce "
             "| M-step | gather | MB per mini-batch and worker | same model |",
             "| --- " + "| ---: " * 11 + "| --- |"]
    last = {(r["workers"], r["bandwidth"]): r for r in report["rounds"][-1]["runs"]}
    for (workers, bandwidth), run in last.items():
        ratios = [r["speedup"] for rnd in report["rounds"] for r in rnd["runs"]
                  if (r["workers"], r["bandwidth"]) == (workers, bandwidth)]
        phases = " | ".join(f"{run['phases_ms'][p]:.0f}" for p in PHASES)
        phases = phases.replace(" | ", f" | {run.get('slowest_fit_lead_ms', float('nan')):.0f} | ", 1)
        same = all(r["same_model"] for rnd in report["rounds"] for r in rnd["runs"]
                   if (r["workers"], r["bandwidth"]) == (workers, bandwidth))
        link = "none" if workers == 1 else f"{bandwidth / 1e9:g} Gbit/s × c"
        lines.append(f"| {link} | {workers} | {run['seconds']:.1f} | {statistics.median(ratios):.2f}× | "
                     f"{run.get('bound', float('nan')):.2f}× | {run['period_ms']:.0f} | {phases} | "
                     f"{run['link_bytes_per_batch'] / 1e6:.1f} | {same} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    reason = unavailable()
    if reason:
        logger.error("cannot build scaled-down hosts here: %s", reason)
        return 2
    from distlda.corpora.binary import BinaryCorpus

    workdir = Path(tempfile.mkdtemp(prefix="distlda-floor-"))
    try:
        BinaryCorpus.serialize(workdir / "corpus", draw_corpus(args.docs), num_terms=TERMS)
        found = {"ab": ab_pairs(args, workdir)} if args.ab else {"rounds": [one_round(args, workdir, n)
                                                                             for n in range(args.rounds)]}
    except HostsUnavailable as exc:
        logger.error("cannot build scaled-down hosts here: %s", exc)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(), "docs": args.docs,
              "cores": args.cores, **found}
    json_out = args.json_out or ROOT / "bench" / "results" / f"floor-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    logger.info("wrote %s", json_out)
    if "rounds" in report:
        sys.stdout.write(render(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
