"""Distributed training: distlda's cluster against distlda on one thread and gensim's ways to use more cores.

On the debian training corpus, with the shared settings of ``bench/common.py`` and one pass, every
configuration of ``distributed_run.py`` (distlda local 1 thread; distlda distributed with 1 and 2
workers; gensim ``LdaModel``; ``LdaMulticore(workers=2)``; gensim's own distributed mode with 2
workers) runs R times, each run in a fresh process, one at a time, repetitions interleaved. The
report gives medians: documents/s, the share of wall time outside the E-step, and the bytes per
M-step through the cluster's sockets, and checks the targets. It goes between the markers
``<!-- distributed:begin -->`` and ``<!-- distributed:end -->`` of ``docs/benchmarks.md`` (added at
the end when missing; the rest of the file is ``bench/compare.py``'s and is left as it is); the raw
results go to ``bench/results/distributed-<time>.json``.

    python bench/distributed.py                          # full benchmark, 3 runs per configuration
    python bench/distributed.py --quick                  # 6,000 documents, 1 run: checks the harness,
                                                         # writes bench/results/ only
    python bench/distributed.py --configs distlda-1t,distlda-2w --repeats 5
    python bench/distributed.py --gensim-docs 10000      # gensim's distributed mode on a prefix only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import signal
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path
from typing import Any, Sequence

from common import (
    BENCH_DIR,
    CHUNKSIZE,
    DECAY,
    DEFAULT_DATA_DIR,
    GAMMA_THRESHOLD,
    ITERATIONS,
    NUM_TOPICS,
    OFFSET,
    REPO_DIR,
    RESULTS_DIR,
    Config,
    DatasetFiles,
    write_marked_section,
)
from compare import _display_path, machine, prepare
from distributed_run import CONFIG_BY_KEY, DATASET
from report import _machine
from systems import package_version

logger = logging.getLogger("bench.distributed")

QUICK_DOCS = 6000
DEFAULT_OUT = REPO_DIR / "docs" / "benchmarks.md"
QUICK_OUT = RESULTS_DIR / "distributed-quick.md"
BEGIN, END = "<!-- distributed:begin -->", "<!-- distributed:end -->"
MEDIAN_FIELDS = ("docs_per_second", "train_seconds", "outside_estep_share", "daemon_socket_bytes_per_mstep",
                 "wire_bytes_per_mstep", "client_payload_per_mstep", "daemon_proc_io_bytes_per_mstep",
                 "peak_scheduler_bytes", "peak_worker_bytes")
SCALING_TARGET, MULTICORE_TARGET, GENSIM_DIST_TARGET, OUTSIDE_TARGET = 1.6, 5.0, 50.0, 0.15
DASK_TARGET = 0.9
"""The Dask backend's 2 workers against the Pyro5 cluster's 2 workers (docs/s)."""


def parse_args(argv: Sequence[str] | None = None) -> Namespace:
    """Command-line options; ``--quick`` changes the defaults of documents, repetitions and outputs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"the first {QUICK_DOCS:,} documents, 1 run each, report in {QUICK_OUT.name} only "
                             "(checks the harness)")
    parser.add_argument("--configs", default=",".join(CONFIG_BY_KEY),
                        help="comma-separated configurations (default: all: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per configuration (default 3; quick: 1)")
    parser.add_argument("--render", type=Path, default=None,
                        help="run nothing: write the report from this results file again (after a change to the "
                             "report's code)")
    parser.add_argument("--docs", type=int, default=None,
                        help=f"train every configuration on the first N documents (default all; quick {QUICK_DOCS})")
    parser.add_argument("--gensim-docs", type=int, default=None,
                        help="gensim's distributed mode on the first N documents only (default: as --docs)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default %(default)s")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"Markdown file whose distributed section is written (default "
                             f"{DEFAULT_OUT.relative_to(REPO_DIR)}; quick: {QUICK_OUT.relative_to(REPO_DIR)})")
    parser.add_argument("--json-out", type=Path, default=None,
                        help=f"raw results (default {RESULTS_DIR.relative_to(REPO_DIR)}/distributed-<time>.json)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds before a run is stopped and reported as failed (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the runs' own log messages")
    args = parser.parse_args(argv)
    args.configs = [w.strip() for w in args.configs.split(",") if w.strip()]
    unknown = [c for c in args.configs if c not in CONFIG_BY_KEY]
    if unknown or not args.configs:
        parser.error(f"--configs: unknown {unknown}; choose from {list(CONFIG_BY_KEY)}")
    if any(value is not None and value < 1 for value in (args.repeats, args.docs, args.gensim_docs)):
        parser.error("--repeats, --docs and --gensim-docs must be at least 1")
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if args.docs is None and args.quick:
        args.docs = QUICK_DOCS
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    stamp = f"{'distributed-quick' if args.quick else 'distributed'}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    args.json_out = args.json_out or RESULTS_DIR / stamp
    return args


def _docs_for(config: Config, args: Namespace) -> int | None:
    """How many documents a configuration trains on (None: all)."""
    return args.gensim_docs if config.system == "gensim-cluster" and args.gensim_docs else args.docs


def _run_child(command: list[str], timeout: float, verbose: bool) -> tuple[int, str, str]:
    """Run ``command``; on timeout SIGTERM it (so that it stops its clusters), then SIGKILL. (status, out, err)."""
    proc = subprocess.Popen(command, cwd=REPO_DIR, text=True, stdout=subprocess.PIPE,
                            stderr=None if verbose else subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return -1, out or "", f"timed out after {timeout:.0f}s"
    return proc.returncode, out or "", err or ""


def run_configuration(config: Config, seed: int, args: Namespace) -> dict[str, Any]:
    """One run of ``distributed_run.py``; its JSON result, or a record of the failure."""
    docs = _docs_for(config, args)
    command = [sys.executable, str(BENCH_DIR / "distributed_run.py"), "--config", config.key, "--data-dir",
               str(args.data_dir), "--seed", str(seed), *(["--docs", str(docs)] if docs else []),
               *(["--verbose"] if args.verbose else [])]
    status, out, err = _run_child(command, args.timeout, args.verbose)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if status != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-3:]) or f"exit status {status}"
        logger.error("%s failed: %s", config.key, tail)
        return {"config": config.key, "seed": seed, "error": tail}
    return json.loads(lines[-1])


def run_all(args: Namespace) -> list[dict[str, Any]]:
    """Every configuration R times, one run at a time, repetitions interleaved."""
    plan = [(r, CONFIG_BY_KEY[key]) for r in range(args.repeats) for key in args.configs]
    results, started = [], time.perf_counter()
    for i, (repeat, config) in enumerate(plan, 1):
        result = run_configuration(config, repeat, args)
        result["repeat"] = repeat
        results.append(result)
        if "error" not in result:
            logger.info("[%d/%d] %s, run %d: %.0f docs/s on %d documents (%.0fs so far)", i, len(plan), config.key,
                        repeat + 1, result["docs_per_second"], result["num_docs"], time.perf_counter() - started)
    return results


def summarise(results: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, Any]]:
    """Per configuration: medians of ``MEDIAN_FIELDS`` over the successful runs, and the facts they share."""
    summary = {}
    for key in keys:
        runs = [r for r in results if r["config"] == key]
        good = [r for r in runs if "error" not in r]
        row: dict[str, Any] = {"config": key, "runs": len(good), "failed": len(runs) - len(good)}
        if not good:
            row["error"] = runs[-1]["error"] if runs else "not run"
        for name in MEDIAN_FIELDS:
            values = [r[name] for r in good if r.get(name) is not None]
            row[name] = statistics.median(values) if values else None
        for name in ("num_docs", "msteps", "msteps_counted", "units", "outside_estep_from", "dense_estimate_per_mstep",
                     "version"):
            row[name] = good[-1].get(name) if good else None
        row["vs_1t"] = paired_ratio(results, key, "distlda-1t")
        summary[key] = row
    return summary


def _pairs(results: list[dict[str, Any]], key: str, other: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(run of ``key``, run of ``other``) of each repetition in which both succeeded."""
    by_repeat: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        if "error" not in r and r.get("docs_per_second"):
            by_repeat.setdefault(r.get("repeat", 0), {})[r["config"]] = r
    return [(runs[key], runs[other]) for runs in by_repeat.values() if key in runs and other in runs]


def paired_ratio(results: list[dict[str, Any]], key: str, other: str) -> float | None:
    """Median over the repetitions of docs/s of ``key`` over docs/s of ``other`` in the same repetition.

    Repetitions are interleaved, so the two runs of a pair ran minutes apart at most: on a shared machine
    whose speed drifts, this compares like with like better than a ratio of medians."""
    ratios = [a["docs_per_second"] / b["docs_per_second"] for a, b in _pairs(results, key, other)]
    return statistics.median(ratios) if ratios else None


def ceiling_ratio(results: list[dict[str, Any]], key: str, other: str, cores: int) -> float | None:
    """The most ``key`` could reach against ``other`` on ``cores`` cores, whatever it waits: per repetition, the
    documents of ``key`` over the CPU seconds of every process of its run (client, name server, dispatcher,
    workers) shared perfectly between the cores, over the docs/s of ``other``; the median of those."""
    ratios = []
    for run, base in _pairs(results, key, other):
        cpu = list(((run.get("traffic") or {}).get("cpu_seconds") or {}).values())
        if cpu and None not in cpu and sum(cpu) > 0:
            ratios.append(run["num_docs"] / (sum(cpu) / cores) / base["docs_per_second"])
    return statistics.median(ratios) if ratios else None


def targets(summary: dict[str, dict[str, Any]], results: list[dict[str, Any]],
            cores: int | None = None) -> list[tuple[str, str, str]]:
    """(target, measured, PASS / FAIL / n/a): speed ratios are medians of paired runs (see :func:`paired_ratio`);
    with ``cores``, the 2-worker target also shows the ceiling its CPU time allows (:func:`ceiling_ratio`)."""
    def speed(key: str) -> float | None:
        return summary.get(key, {}).get("docs_per_second")

    found = []
    for other, goal, what in (("distlda-1t", SCALING_TARGET, "distlda local, 1 thread"),
                              ("gensim-multicore-2w", MULTICORE_TARGET, "gensim LdaMulticore(workers=2)"),
                              ("gensim-dist-2w", GENSIM_DIST_TARGET, "gensim distributed, 2 workers")):
        target = f"distlda 2 workers >= {goal:g}x the docs/s of {what}"
        ratio = paired_ratio(results, "distlda-2w", other)
        if ratio is not None:
            measured = f"{ratio:.2f}x (medians: {speed('distlda-2w'):,.0f} vs {speed(other):,.0f} docs/s)"
            ceiling = ceiling_ratio(results, "distlda-2w", other, cores) if cores and other == "distlda-1t" else None
            if ceiling is not None:
                measured += (f"; at most {ceiling:.2f}x on this machine's {cores} cores: the CPU seconds of every "
                             "process of the run, shared perfectly between the cores")
            found.append((target, measured, "PASS" if ratio >= goal else "FAIL"))
        else:
            found.append((target, "no result of " + " and ".join(k for k in ("distlda-2w", other) if not speed(k)),
                          "n/a"))
    target = f"distlda on Dask, 2 workers >= {DASK_TARGET:g}x the docs/s of distlda distributed (Pyro5), 2 workers"
    ratio = paired_ratio(results, "distlda-dask-2w", "distlda-2w")
    if ratio is not None:
        found.append((target, f"{ratio:.2f}x (medians: {speed('distlda-dask-2w'):,.0f} vs {speed('distlda-2w'):,.0f} "
                              "docs/s)", "PASS" if ratio >= DASK_TARGET else "FAIL"))
    elif "distlda-dask-2w" in summary:
        found.append((target, "no result of " + " and ".join(
            k for k in ("distlda-dask-2w", "distlda-2w") if not speed(k)), "n/a"))
    for key in ("distlda-1w", "distlda-2w"):
        target = f"{CONFIG_BY_KEY[key].label}: share of wall time outside the E-step < {OUTSIDE_TARGET:.0%}"
        share = summary.get(key, {}).get("outside_estep_share")
        if share is None:
            found.append((target, f"no result of {key}", "n/a"))
        else:
            found.append((target, f"{share:.1%}", "PASS" if share < OUTSIDE_TARGET else "FAIL"))
    return found


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:,.1f} MB"


def _table(summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| configuration | documents | docs/s | vs distlda 1 thread | outside E-step | M-steps "
             "| dispatcher + workers in+out / M-step | on the wire / M-step | client payload / M-step |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, row in summary.items():
        label = CONFIG_BY_KEY[key].label + (f" ({row['failed']} of {row['failed'] + row['runs']} runs failed)"
                                            if row["failed"] else "")
        if row["docs_per_second"] is None:
            lines.append(f"| {label} | failed: {row['error']} | | | | | | | |")
            continue
        share = row["outside_estep_share"]
        share_text = "n/a" if share is None else f"{share:.1%}"
        if share is not None and row["outside_estep_from"] != "gamma_seconds":
            share_text += " (≈)"
        steps = f"{row['msteps']}" + ("" if row["msteps_counted"] else " (expected)")
        vs = row.get("vs_1t")
        ratio = "n/a" if not vs else f"{vs:.2f}x" if vs >= 0.1 else f"{vs:.3f}x"
        lines.append(f"| {label} | {row['num_docs']:,} | {row['docs_per_second']:,.0f} | {ratio} | {share_text} "
                     f"| {steps} | {_mb(row['daemon_socket_bytes_per_mstep'])} | {_mb(row['wire_bytes_per_mstep'])} "
                     f"| {_mb(row['client_payload_per_mstep'])} |")
    return lines


def _notes(report: dict[str, Any]) -> list[str]:
    summary, info = report["summary"], report["dataset"]
    dense = "; ".join(f"{w} worker{'s' if w > 1 else ''}: {_mb(NUM_TOPICS * info['num_terms'] * w * 2 * 4)}"
                      for w in (1, 2))
    proc_io = "; ".join(f"{CONFIG_BY_KEY[key].label}: {r['daemon_proc_io_bytes_per_mstep']:,.0f}"
                        for key, r in summary.items() if r.get("daemon_proc_io_bytes_per_mstep") is not None)
    gensim_docs = summary.get("gensim-dist-2w", {}).get("num_docs")
    other_docs = {r["num_docs"] for key, r in summary.items() if key != "gensim-dist-2w" and r.get("num_docs")}
    notes = [
        f"- **Settings**: K = {NUM_TOPICS}, mini-batches of {CHUNKSIZE:,} documents, one pass, decay {DECAY:g}, offset "
        f"{OFFSET:g}, at most {ITERATIONS} E-step iterations, threshold {GAMMA_THRESHOLD:g}, α = η = 1/K, float32; "
        f"the debian training corpus has {info['num_train_docs']:,} documents and {info['num_terms']:,} terms. "
        "docs/s = documents / seconds of the call that trains the model (for the distributed configurations "
        "it includes connecting to the dispatcher and initialising the workers). Clusters are started, and "
        "distlda's kernels loaded (a tiny untimed training, on the cluster for the distributed configurations), "
        "before the clock starts. Every process has one BLAS thread; each distlda worker one E-step thread "
        "(two for \"1 worker with 2 threads\"). docs/s are medians over the runs; the ratios (\"vs distlda 1 "
        "thread\" and the targets) are medians of per-repetition ratios: repetitions are interleaved, so each "
        "pair ran minutes apart, which matters on a shared machine whose speed drifts.",
        "- **Clusters** run on this machine, on 127.0.0.1: distlda's `LocalCluster(workers=N, "
        "threads_per_worker=1)`; gensim's as its documentation says (`python -m Pyro4.naming`, `python -m "
        "gensim.models.lda_worker` ×2, `python -m gensim.models.lda_dispatcher`, with PYRO_SERIALIZERS_ACCEPTED "
        "and PYRO_SERIALIZER set to pickle and PYRO_NS_HOST/PYRO_NS_PORT naming the name server).",
        "- **Outside the E-step** = 1 − E-step seconds / (wall seconds × parallel units). For distlda, "
        "`training_stats`: 1 − gamma_seconds / (wall_seconds × threads or workers), gamma_seconds summed over "
        "the workers. For gensim's distributed mode (≈) it is estimated from the workers' CPU seconds "
        "(`/proc/<pid>/stat`), which also count their unpickling and state resets: an upper bound of their E-step "
        "time. n/a: not measured (single-process gensim; LdaMulticore).",
        "- **Bytes per M-step** are measured, not computed: the kernel's TCP counters (`tcp_info` bytes_sent and "
        "bytes_received, read with `ss -tinp` every 2 s and at the end) of every socket of the cluster's "
        "processes, from just before the timed call to just after it, divided by the M-steps. *dispatcher + "
        "workers in+out* adds what the dispatcher and the workers sent and received (a byte between the "
        "dispatcher and a worker counts twice, once at each end); *on the wire* adds what every process, the "
        "client and name server included, sent (each byte once). *Client payload* is distlda's "
        "`training_stats` bytes_sent + bytes_received (array bytes only, without the framing).",
        "- **`/proc/<pid>/io`** (rchar + wchar) of the dispatcher and workers counted "
        f"bytes per M-step in these runs ({proc_io or 'not measured'}): those counters "
        "see `read`/`write` calls only, not the `send`/`recv` calls through which Pyro moves its messages, "
        "so they cannot measure the network; the socket counters above do.",
        f"- **The original design's dense exchange**, K × V × workers × 2 × 4 bytes per M-step (every worker "
        f"receives and returns a K × V float32 matrix), would be {dense}.",
        "- **gensim's distributed mode and LdaMulticore** make an M-step every `workers × chunksize` documents "
        "(4,000 with 2 workers), so their M-steps are half as many (counted from that rule, marked *expected*) "
        "and they train a different model than distlda, whose mini-batch is 2,000 documents whatever the "
        "number of workers. gensim's dispatcher passes its workers only `num_topics`, `id2word`, `chunksize`, "
        "`alpha` and `eta`: their `iterations` and `gamma_threshold` are gensim's defaults, which equal the "
        "settings here.",
        f"- Each configuration ran {report['repeats']} time(s), each in a fresh process, one at a time, the "
        "repetitions interleaved; figures are medians; seeds are the repetition number.",
    ]
    dask = summary.get("distlda-dask-2w", {})
    if dask.get("peak_worker_bytes") is not None:
        notes.insert(-1, "- **Dask** (`distlda-dask-2w`): `LdaModel(distributed=client)` on a Dask `LocalCluster("
                         "n_workers=2, threads_per_worker=1)` of worker processes; its scheduler runs in the client's "
                         "process, so the client's sockets and CPU include the scheduler's, and *dispatcher + workers* "
                         "counts the workers only. Its outside-E-step share (≈) comes from the workers' CPU seconds. "
                         f"Peak resident memory (`distlda.dask.connect.peak_memory`, medians): scheduler and client "
                         f"{_mb(dask.get('peak_scheduler_bytes'))}, the larger worker "
                         f"{_mb(dask.get('peak_worker_bytes'))}.")
    if gensim_docs and other_docs and gensim_docs < min(other_docs):
        notes.insert(-1, f"- **gensim's distributed mode ran on the first {gensim_docs:,} documents only** "
                         "(`--gensim-docs`), the others on more; its docs/s, and the ratio to it, come from that "
                         "prefix.")
    if report["docs"]:
        notes.insert(-1, f"- Every configuration trained on the first {report['docs']:,} documents of the corpus "
                         "(`--docs`), not on all of them.")
    return notes


def render(report: dict[str, Any], json_path: str) -> str:
    """The Markdown section (without its markers)."""
    out = ["## Distributed training", ""]
    if report["quick"]:
        out += ["> **QUICK RUN: these figures are not results.** `bench/distributed.py --quick` trains on a few "
                "thousand documents, once, only to check that the harness works.", ""]
    out += ["distlda's distributed mode against distlda on one thread and against gensim's `LdaMulticore` and "
            "distributed mode, on the debian corpus. Written by `bench/distributed.py` (see `bench/README.md`); "
            f"raw results in `{json_path}`.", "", "### Command", "", "```", report["command"], "```", "",
            "### Machine", "", *_machine(report),
            f"- Pyro5 {report['pyro']['Pyro5']} (distlda), Pyro4 {report['pyro']['Pyro4']} (gensim)", "",
            "### Results", "", *_table(report["summary"]), "", "### Targets", "", "| target | measured | verdict |",
            "| --- | --- | --- |", *[f"| {t} | {m} | {v} |" for t, m, v in report["targets"]]]
    failures = [r for r in report["runs"] if "error" in r]
    if failures:
        out += ["", "### Failed runs", "", *[f"- {r['config']}, run {r['repeat'] + 1}: {r['error']}" for r in failures]]
    out += ["", "### How to read these numbers", "", *_notes(report)]
    return "\n".join(out)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between this benchmark's markers in ``path`` (see :func:`common.write_marked_section`)."""
    write_marked_section(path, section, BEGIN, END)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the data, run, summarise, write the raw results and the report section."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.render is not None:
        report = json.loads(args.render.read_text(encoding="utf-8"))
        report["summary"] = summarise(report["runs"], report["configs"])
        report["targets"] = targets(report["summary"], report["runs"], report["machine"].get("usable_cores"))
        args.render.write_text(json.dumps(report, indent=1), encoding="utf-8")
        write_section(args.out, render(report, _display_path(args.render)))
        logger.info("wrote %s from %s", args.out, args.render)
        return 0
    started = time.perf_counter()
    info = machine()
    prepare(Namespace(data_dir=args.data_dir, datasets=[DATASET], synthetic_docs=None, debian_limit=None))
    dataset = DatasetFiles.of(args.data_dir, DATASET).read_info()
    warm = [sys.executable, str(BENCH_DIR / "run_one.py"), "--system", "distlda", "--dataset", DATASET,
            "--data-dir", str(args.data_dir), "--warm-cache"]
    if _run_child(warm, args.timeout, args.verbose)[0] != 0:
        logger.warning("warming numba's cache failed; the first distlda run may include compilation")
    results = run_all(args)
    summary = summarise(results, args.configs)
    command = shlex.join(["python", "bench/distributed.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"command": command, "quick": args.quick, "date": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": info, "pyro": {p: package_version(p) for p in ("Pyro4", "Pyro5")}, "dataset": dataset,
              "repeats": args.repeats, "docs": args.docs, "gensim_docs": args.gensim_docs, "configs": args.configs,
              "wall_seconds": time.perf_counter() - started, "runs": results, "summary": summary,
              "targets": targets(summary, results, info.get("usable_cores"))}
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    write_section(args.out, render(report, _display_path(args.json_out)))
    logger.info("wrote %s and %s in %.0fs", args.out, args.json_out, time.perf_counter() - started)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
