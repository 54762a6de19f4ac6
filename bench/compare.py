"""Run the whole comparison and write docs/benchmarks.md.

Every configuration (a system with its threads or workers) is trained on every dataset
for every number of passes, R times, each time in a fresh process (``run_one.py``) and
one after another, never two at once. Repetitions are interleaved (all configurations
once, then all again) so that a slow spell of a shared machine does not fall on one
system only. The tables show the median of each figure; the raw results go to a JSON
file. The reading-speed benchmark (``read_speed.py``) runs last.

    python bench/compare.py                      # full benchmark (prepares the data first)
    python bench/compare.py --quick              # small data, one repetition: checks the harness
                                                 # (writes bench/results/benchmarks-quick.md)
    python bench/compare.py --systems distlda-1t,gensim --datasets synthetic --passes 1
    python bench/compare.py --systems distlda-1t,distlda-2t,gensim --passes 5 --repeats 1 \
        --add-to bench/results/compare-<time>.json     # new rows next to an earlier run's
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from common import (
    BENCH_DIR,
    BLAS_ENV_VARS,
    CONFIGS,
    DATASETS,
    DEFAULT_DATA_DIR,
    DEFAULT_GIBBS_PER_PASS,
    QUICK_DATA_DIR,
    REPO_DIR,
    RESULTS_DIR,
    Config,
    DatasetFiles,
    write_marked_section,
)
from report import render

logger = logging.getLogger("bench.compare")

QUICK_DOCS = 4000
DEFAULT_OUT = REPO_DIR / "docs" / "benchmarks.md"
QUICK_OUT = RESULTS_DIR / "benchmarks-quick.md"
NUMERIC_FIELDS = ("train_seconds", "docs_per_second", "load_seconds", "eval_seconds", "peak_rss_train_mb",
                  "peak_rss_children_mb", "peak_rss_mb", "heldout_per_word_bound", "topic_recovery")
PACKAGES = ("distlda", "gensim", "scikit-learn", "tomotopy", "numpy", "scipy", "numba")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` changes the defaults of the data and repetitions."""
    keys = [c.key for c in CONFIGS]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DOCS} documents per dataset in {QUICK_DATA_DIR}, 1 repetition (harness check)")
    parser.add_argument("--systems", default=",".join(keys),
                        help="comma-separated configurations, or system names for all their configurations "
                             f"(default: all: {','.join(keys)})")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="default %(default)s")
    parser.add_argument("--passes", default="1,5", help="comma-separated (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per configuration (default 3; quick: 1)")
    parser.add_argument("--gibbs-per-pass", type=int, default=DEFAULT_GIBBS_PER_PASS,
                        help="tomotopy Gibbs sweeps per pass (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"dataset cache (default {DEFAULT_DATA_DIR}; quick: {QUICK_DATA_DIR})")
    parser.add_argument("--synthetic-docs", type=int, default=None,
                        help=f"synthetic corpus size (default 100000; quick: {QUICK_DOCS})")
    parser.add_argument("--debian-limit", type=int, default=None,
                        help=f"first N lines of the debian file (default all; quick: {QUICK_DOCS})")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"Markdown report (default {DEFAULT_OUT.relative_to(REPO_DIR)}; quick: "
                             f"{QUICK_OUT.relative_to(REPO_DIR)}, so that a harness "
                             "check never replaces the published results)")
    parser.add_argument("--json-out", type=Path, default=None,
                        help=f"raw results (default {RESULTS_DIR}/compare-<time>.json)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a run is stopped (default none)")
    parser.add_argument("--no-read-speed", action="store_true", help="skip the reading-speed benchmark")
    parser.add_argument("--render", type=Path, default=None,
                        help="run nothing: write the report from this results file again (after a change to the "
                             "report's code)")
    parser.add_argument("--add-to", type=Path, default=None,
                        help="an earlier results file: its runs of configurations, datasets and passes not run "
                             "now are kept in the report (and the JSON), next to this run's")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the runs' own log messages")
    args = parser.parse_args(argv)

    args.configs = _select_configs(parser, args.systems)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not args.datasets or set(args.datasets) - set(DATASETS):
        parser.error(f"--datasets must name some of {DATASETS}")
    try:
        args.passes = [int(p) for p in args.passes.split(",") if p.strip()]
    except ValueError:
        parser.error("--passes must be comma-separated integers")
    if not args.passes or min(args.passes) < 1:
        parser.error("--passes must be positive integers")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.data_dir is None:
        args.data_dir = QUICK_DATA_DIR if args.quick else DEFAULT_DATA_DIR
    if args.quick:
        args.synthetic_docs = args.synthetic_docs or QUICK_DOCS
        args.debian_limit = args.debian_limit or QUICK_DOCS
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if args.json_out is None:
        args.json_out = RESULTS_DIR / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    return args


def _select_configs(parser: argparse.ArgumentParser, text: str) -> list[Config]:
    chosen: list[Config] = []
    for word in (w.strip() for w in text.split(",") if w.strip()):
        matches = [c for c in CONFIGS if word in (c.key, c.system)]
        if not matches:
            parser.error(f"unknown configuration {word!r}; choose from {[c.key for c in CONFIGS]} "
                         f"or a system name")
        chosen.extend(c for c in matches if c not in chosen)
    if not chosen:
        parser.error("--systems is empty")
    return chosen


def _child_env() -> dict[str, str]:
    """This process's environment without BLAS thread settings (run_one.py pins them per configuration)."""
    return {k: v for k, v in os.environ.items() if k not in BLAS_ENV_VARS}


def _run(command: list[str], timeout: float | None, verbose: bool) -> tuple[int, str, str]:
    """Run ``command`` from the repository folder; (exit status, stdout, stderr)."""
    try:
        proc = subprocess.run(command, cwd=REPO_DIR, env=_child_env(), text=True, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE)
    except subprocess.TimeoutExpired as exc:
        return -1, "", f"timed out after {exc.timeout:.0f}s"
    return proc.returncode, proc.stdout, proc.stderr or ""


def prepare(args: argparse.Namespace) -> None:
    """Build the datasets (idempotent: prepare.py skips what exists)."""
    command = [sys.executable, str(BENCH_DIR / "prepare.py"), "--data-dir", str(args.data_dir),
               "--datasets", ",".join(args.datasets)]
    if args.synthetic_docs:
        command += ["--synthetic-docs", str(args.synthetic_docs)]
    if args.debian_limit:
        command += ["--debian-limit", str(args.debian_limit)]
    logger.info("preparing data: %s", shlex.join(command))
    if subprocess.run(command, cwd=REPO_DIR).returncode != 0:
        raise SystemExit("bench/prepare.py failed; see its messages above")


def run_configuration(config: Config, dataset: str, passes: int, seed: int,
                      args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``run_one.py``; its JSON result, or a record of the failure."""
    command = [sys.executable, str(BENCH_DIR / "run_one.py"), "--system", config.system, "--dataset", dataset,
               "--data-dir", str(args.data_dir), "--passes", str(passes), "--threads", str(config.threads),
               "--seed", str(seed), "--gibbs-per-pass", str(args.gibbs_per_pass)]
    if args.verbose:
        command.append("--verbose")
    status, out, err = _run(command, args.timeout, args.verbose)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if status != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-3:]) or f"exit status {status}"
        logger.error("%s, %s, %d pass(es) failed: %s", config.key, dataset, passes, tail)
        return {"config": config.key, "dataset": dataset, "passes": passes, "seed": seed, "error": tail}
    result = json.loads(lines[-1])
    result["config"] = config.key
    return result


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every configuration, dataset, passes value and repetition, one run at a time."""
    plan = [(r, d, p, c) for r in range(args.repeats) for d in args.datasets for p in args.passes
            for c in args.configs]
    results = []
    started = time.perf_counter()
    for i, (repeat, dataset, passes, config) in enumerate(plan, 1):
        result = run_configuration(config, dataset, passes, repeat, args)
        result["repeat"] = repeat
        results.append(result)
        if "error" not in result:
            logger.info("[%d/%d] %s, %s, %d pass(es), run %d: %.0f docs/s, bound %.4f (%.0fs so far)", i, len(plan),
                        config.key, dataset, passes, repeat + 1, result["docs_per_second"],
                        result["heldout_per_word_bound"], time.perf_counter() - started)
    return results


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median of every figure per (dataset, passes, configuration), over the successful runs."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["passes"], r["config"]), []).append(r)
    summary = []
    for (dataset, passes, config), runs in groups.items():
        good = [r for r in runs if "error" not in r]
        row: dict[str, Any] = {"dataset": dataset, "passes": passes, "config": config, "runs": len(good),
                               "failed": len(runs) - len(good)}
        if not good:
            row["error"] = runs[-1]["error"]
        for name in NUMERIC_FIELDS:
            values = [r[name] for r in good if r.get(name) is not None]
            row[name] = statistics.median(values) if values else None
        if good:
            for name in ("threads", "blas_threads", "num_train_docs", "gibbs_sweeps", "version", "details"):
                row[name] = good[-1].get(name)
        if config == "distlda-2t":
            row["paired_vs_1t"] = _paired_ratio(results, dataset, passes, "distlda-2t", "distlda-1t")
        summary.append(row)
    return summary


def _paired_ratio(results: list[dict[str, Any]], dataset: str, passes: int, key: str, other: str) -> float | None:
    """Median over repetitions of docs/s of ``key`` over ``other`` in the same repetition (they ran one after
    the other, so a machine whose speed drifts between repetitions compares like with like)."""
    speeds: dict[int, dict[str, float]] = {}
    for r in results:
        if r["dataset"] == dataset and r["passes"] == passes and "error" not in r and r.get("docs_per_second"):
            speeds.setdefault(r.get("repeat", 0), {})[r["config"]] = r["docs_per_second"]
    ratios = [s[key] / s[other] for s in speeds.values() if key in s and other in s]
    return statistics.median(ratios) if ratios else None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, Python and library versions, distlda's git commit."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gb": mem_gb, "os": platform.platform(), "python": platform.python_version(),
            "versions": versions, "git": _git_commit(), "load_average": os.getloadavg()}


def _git_commit() -> str:
    """Short commit of the checkout, with '+ local changes' when distlda/ differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "distlda"], cwd=REPO_DIR,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} + local changes" if dirty else commit


def read_speed(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run read_speed.py on the debian data (or the first dataset); None when it fails."""
    dataset = "debian" if "debian" in args.datasets else args.datasets[0]
    command = [sys.executable, str(BENCH_DIR / "read_speed.py"), "--data-dir", str(args.data_dir),
               "--dataset", dataset, "--repeats", str(args.repeats), "--json"]
    status, out, err = _run(command, args.timeout, args.verbose)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if status != 0 or not lines:
        logger.error("read_speed.py failed: %s", " | ".join(err.strip().splitlines()[-3:]))
        return None
    return json.loads(lines[-1])


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare, run, summarise and write the report."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.render is not None:
        report = json.loads(args.render.read_text(encoding="utf-8"))
        report["summary"] = summarise(report["runs"])
        args.render.write_text(json.dumps(report, indent=1), encoding="utf-8")
        write_report(args.out, report, _display_path(args.render))
        return 0
    started = time.perf_counter()
    info = machine()
    prepare(args)
    datasets = {name: DatasetFiles.of(args.data_dir, name).read_info() for name in args.datasets}
    if any(c.system == "distlda" for c in args.configs):
        command = [sys.executable, str(BENCH_DIR / "run_one.py"), "--system", "distlda", "--dataset",
                   args.datasets[0], "--data-dir", str(args.data_dir), "--warm-cache"]
        if _run(command, args.timeout, args.verbose)[0] != 0:
            logger.warning("warming numba's cache failed; the first distlda run may include compilation")
    results = run_all(args)
    speeds = None if args.no_read_speed else read_speed(args)
    command = shlex.join(["python", "bench/compare.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"command": command, "quick": args.quick, "date": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": info, "datasets": datasets, "repeats": args.repeats, "gibbs_per_pass": args.gibbs_per_pass,
              "configs": [c.key for c in args.configs], "passes": args.passes,
              "wall_seconds": time.perf_counter() - started, "runs": results,
              "read_speed": speeds, "read_speed_failed": speeds is None and not args.no_read_speed}
    if args.add_to is not None:
        report = add_to(json.loads(args.add_to.read_text(encoding="utf-8")), report, _display_path(args.add_to))
    report["summary"] = summarise(report["runs"])
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    write_report(args.out, report, _display_path(args.json_out))
    logger.info("wrote %s and %s in %.0fs", args.out, args.json_out, time.perf_counter() - started)
    return 1 if any("error" in r for r in results) else 0


REPORT_BEGIN, REPORT_END = "<!-- compare:begin -->", "<!-- compare:end -->"
"""The markers of the comparison in the Markdown file: everything outside them is kept as it is."""


def write_report(out: Path, report: dict[str, Any], json_path: str) -> None:
    """Write the Markdown report between its markers in ``out`` (a new file holds only it); the sections other
    benchmarks wrote (bench/distributed.py, bench/kernel_speed.py) and the notes written by hand stay."""
    write_marked_section(out, render(report, json_path), REPORT_BEGIN, REPORT_END)


def add_to(earlier: dict[str, Any], report: dict[str, Any], earlier_path: str) -> dict[str, Any]:
    """``report`` with the runs of ``earlier`` that it does not repeat (same configuration, dataset and passes)."""
    fresh = {(r["config"], r["dataset"], r["passes"]) for r in report["runs"]}
    kept = [r for r in earlier["runs"] if (r["config"], r["dataset"], r["passes"]) not in fresh]
    merged = dict(report)
    merged["runs"] = kept + report["runs"]
    merged["configs"] = list(dict.fromkeys([*earlier["configs"], *report["configs"]]))
    merged["passes"] = sorted(set(earlier["passes"]) | set(report["passes"]))
    merged["datasets"] = {**earlier["datasets"], **report["datasets"]}
    merged["command"] = f"{earlier['command']}\n{report['command']}"
    if report.get("read_speed") is None:
        merged["read_speed"], merged["read_speed_failed"] = earlier.get("read_speed"), earlier.get("read_speed_failed")
    merged["earlier"] = {"file": earlier_path, "date": earlier["date"], "git": earlier["machine"].get("git"),
                         "runs": len(kept), "repeats": earlier.get("repeats")}
    return merged


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_DIR))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
